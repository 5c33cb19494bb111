"""Batch audit: read a file of listings (CSV, JSONL or any format `dram.data.readers` reads) and a zip of
their photos, extract attribute values from each, and list the listings missing attributes their category
usually has.

This lives outside app.py, with no gradio in it, because auditing a batch and summarising its gaps is
as useful from a script or notebook as from the web page; the app only adds the progress bar, the
messages and the components. Bad input raises `DramInputError` with a message meant for the user.
"""
from __future__ import annotations

import csv
import html
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from dram.data.listings import Listing
from dram.data.photo_sources import PhotoZip
from dram.data.readers import read_listing_file
from dram.errors import DramInputError

if TYPE_CHECKING:  # only for annotations: importing this module stays free of torch
    from dram.inference import Extraction, Extractor

MAX_BATCH_ROWS = 2000
BATCH_CHUNK = 128  # listings per extract_batch call and progress step: 4 batches, run side by side on the cores
UNFAMILIAR_SHOWN = 10  # ids of unlike-the-training-data listings named in the summary
USUAL_SHARE = 0.8  # an attribute is "usual" for a category when at least this share of its listings has it
NO_CATEGORY = "(no category)"


@dataclass
class AuditResult:
    rows_read: int
    done: list[tuple[Listing, Extraction]]  # the listings extracted, in file order
    missing: list[list[Any]]  # [id, category, missing attributes, listings in category, text]
    problems: list[list[Any]]  # [row, id, problem, action], by row (line for JSONL)
    category_table: str  # markdown: per category, its size, usual attributes and listings missing some
    csv_path: Path  # id, attribute, value, confidence, unlike_training for every extracted value

    @property
    def unfamiliar(self) -> list[str]:
        """Ids of the listings unlike those the model learned from (dram.familiarity)."""
        return [listing.id for listing, extraction in self.done if extraction.unfamiliar]

    def summary_markdown(self) -> str:
        checked = any(extraction.unfamiliar is not None for _, extraction in self.done)
        flagged = self.unfamiliar
        familiarity = ""
        if checked:
            shown = ", ".join(html.escape(i) for i in flagged[:UNFAMILIAR_SHOWN])
            more = f" and {len(flagged) - UNFAMILIAR_SHOWN} more" if len(flagged) > UNFAMILIAR_SHOWN else ""
            familiarity = (f" **{len(flagged)}** unlike the listings the model learned from, so their values may be "
                           f"wrong (column `unlike_training` of the CSV)" + (f": {shown}{more}." if flagged else "."))
        return (f"**{self.rows_read}** listings read, **{len(self.done)}** extracted, "
                f"**{self.rows_read - len(self.done)}** skipped (see problems), **{len(self.missing)}** missing "
                f"attributes their category usually has.{familiarity}\n\n{self.category_table}")


def listing_category(listing: Listing, extraction: Extraction) -> str:
    """The listing's `category`, else the first article type extracted (lower-cased), else NO_CATEGORY."""
    category = str(listing.meta.get("category") or "").strip()
    if category:
        return category
    types = [s.text for s in extraction.spans if s.attribute == "article_type"]
    return types[0].casefold() if types else NO_CATEGORY


def missing_summary(done: list[tuple[Listing, Extraction]]) -> tuple[list[list[Any]], str]:
    """Listings missing attributes that >= 80% of their category's listings in this batch have."""
    groups: dict[str, list[tuple[Listing, set[str]]]] = defaultdict(list)
    for listing, extraction in done:
        groups[listing_category(listing, extraction)].append((listing, {s.attribute for s in extraction.spans}))
    missing_rows: list[list[Any]] = []
    lines = []
    for category, members in sorted(groups.items()):
        counts = Counter(a for _, attrs in members for a in attrs)
        usual = sorted(a for a, n in counts.items() if n >= USUAL_SHARE * len(members))
        gaps = 0
        for listing, attrs in members:
            lacking = [a for a in usual if a not in attrs]
            if lacking:
                gaps += 1
                missing_rows.append([listing.id, category, ", ".join(lacking), len(members), listing.text])
        lines.append(f"| {html.escape(category)} | {len(members)} | {', '.join(usual) or '—'} | {gaps} |")
    table = "| category | listings | usually has | listings missing some |\n|---|---|---|---|\n" + "\n".join(lines)
    return missing_rows, table


def run_audit(extractor: Extractor, listing_file: Path, photos_zip: Path | None, tau: float,
              progress: Callable[[float], None] | None = None, out_dir: Path | None = None) -> AuditResult:
    """Audit one batch: extract every usable row, write the values CSV, summarise the gaps.

    Rows that cannot be used (no id, empty text, a photo not in the zip, an unreadable photo) become
    problems and the rest are still processed. `progress` is called with the share done (0..1) after
    each chunk; the CSV goes to `out_dir` (default: a new temporary folder). No photo is written out.
    """
    with PhotoZip(photos_zip) as photos:  # by name in the zip; with no zip, a row naming a photo is a problem
        read = read_listing_file(listing_file, photos=photos, max_rows=MAX_BATCH_ROWS)
    problems = [[row.number, row.id, row.problem, "skipped"] for row in read.rows if row.listing is None]
    todo = [row for row in read.rows if row.listing is not None]
    done: list[tuple[Listing, Extraction]] = []
    if progress:
        progress(0.0)
    for start in range(0, len(todo), BATCH_CHUNK):
        chunk = todo[start : start + BATCH_CHUNK]
        results = extractor.extract_batch([(row.listing.text, row.listing.image) for row in chunk], tau_r=tau,
                                          categories=[row.listing.category() for row in chunk])
        for row, result in zip(chunk, results):
            if isinstance(result, DramInputError):
                problems.append([row.number, row.id, str(result), "skipped"])
            else:
                done.append((row.listing, result))
        if progress:
            progress(min(1.0, (start + len(chunk)) / max(len(todo), 1)))
    out_dir = out_dir if out_dir is not None else Path(tempfile.mkdtemp(prefix="dram-audit-out-"))
    out_csv = _write_values(out_dir / f"{listing_file.stem}-attributes.csv", done)
    missing, category_table = missing_summary(done)
    problems.sort(key=lambda p: p[0])
    return AuditResult(len(read.rows), done, missing, problems, category_table, out_csv)


def _write_values(path: Path, done: list[tuple[Listing, Extraction]]) -> Path:
    """id, attribute, value, confidence, unlike_training for every extracted value."""
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "attribute", "value", "confidence", "unlike_training"])
        for listing, extraction in done:
            flag = {True: "yes", False: "no", None: ""}[extraction.unfamiliar]
            for span in extraction.spans:
                writer.writerow([listing.id, span.attribute, span.text, f"{span.confidence:.4f}", flag])
    return path
