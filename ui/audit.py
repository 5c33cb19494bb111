"""Batch audit: read a file of listings (CSV or JSONL) and a zip of their photos, extract attribute
values from each, and list the listings missing attributes their category usually has.

This lives outside app.py, with no gradio in it, because reading a batch and summarising its gaps is
as useful from a script or notebook as from the web page; the app only adds the progress bar, the
messages and the components. Bad input raises `DramInputError` with a message meant for the user.
"""
from __future__ import annotations

import csv
import html
import json
import shutil
import tempfile
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable

from dram.errors import DramInputError

if TYPE_CHECKING:  # only for annotations: importing this module stays free of torch
    from dram.inference import Extraction, Extractor

MAX_BATCH_ROWS = 2000
MAX_ZIP_BYTES = 300 * 1024 * 1024
BATCH_CHUNK = 16  # listings per extract_batch call (and per progress step)
UNFAMILIAR_SHOWN = 10  # ids of unlike-the-training-data listings named in the summary
USUAL_SHARE = 0.8  # an attribute is "usual" for a category when at least this share of its listings has it
NO_CATEGORY = "(no category)"


@dataclass
class BatchRow:
    number: int  # 1-based data row (line for JSONL)
    id: str
    text: str
    image: str
    category: str


@dataclass
class AuditResult:
    rows_read: int
    done: list[tuple[BatchRow, Extraction]]  # the listings extracted, in file order
    missing: list[list[Any]]  # [id, category, missing attributes, listings in category, text]
    problems: list[list[Any]]  # [row, id, problem, action], by row
    category_table: str  # markdown: per category, its size, usual attributes and listings missing some
    csv_path: Path  # id, attribute, value, confidence, unlike_training for every extracted value

    @property
    def unfamiliar(self) -> list[str]:
        """Ids of the listings unlike those the model learned from (dram.familiarity)."""
        return [row.id for row, extraction in self.done if extraction.unfamiliar]

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


def read_rows(path: Path) -> tuple[list[BatchRow], list[list[Any]]]:
    """Rows of a CSV or JSONL listing file, plus problems found while reading it."""
    suffix = path.suffix.lower()
    problems: list[list[Any]] = []
    records: list[tuple[int, dict]] = []
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DramInputError("The listing file is not UTF-8 text; save it as UTF-8 CSV or JSONL.") from err
    if suffix == ".csv":
        reader = csv.DictReader(raw.splitlines())
        columns = {(c or "").strip().lower() for c in (reader.fieldnames or [])}
        _require_columns(columns)
        for number, record in enumerate(reader, start=1):
            records.append((number, {(k or "").strip().lower(): v for k, v in record.items()}))
    elif suffix in (".jsonl", ".json", ".ndjson"):
        keys: set[str] = set()
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                problems.append([number, "", "line is not valid JSON", "skipped"])
                continue
            if not isinstance(record, dict):
                problems.append([number, "", "line is not a JSON object", "skipped"])
                continue
            record = {str(k).strip().lower(): v for k, v in record.items()}
            keys |= set(record)
            records.append((number, record))
        _require_columns(keys)
    else:
        raise DramInputError(f"Unsupported listing file {path.name!r}: upload a .csv or .jsonl file.")
    if not records:
        raise DramInputError("The listing file has no rows.")
    if len(records) > MAX_BATCH_ROWS:
        raise DramInputError(f"The file has {len(records)} listings; this app audits at most "
                             f"{MAX_BATCH_ROWS} at a time. Split the file.")
    rows = [BatchRow(n, _cell(r.get("id")), _cell(r.get("text")), _cell(r.get("image")), _cell(r.get("category")))
            for n, r in records]
    return rows, problems


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _require_columns(found: set[str]) -> None:
    missing = [c for c in ("id", "text") if c not in found]
    if missing:
        shown = ", ".join(sorted(c for c in found if c)) or "none"
        raise DramInputError(f"The listing file is missing the column(s) {', '.join(missing)}. It needs columns "
                             f"`id` and `text`, and may have `image` (a file name in the photo zip) and "
                             f"`category`. Columns found: {shown}.")


def unpack_photos(zip_path: Path | None, into: Path) -> dict[str, Path]:
    """Extract a photo zip safely (no paths outside `into`, bounded size); map names to files.

    Each file is reachable by its path in the zip and, when no other file shares it, by its base name.
    """
    if zip_path is None:
        return {}
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as err:
        raise DramInputError("The photo archive is not a valid zip file.") from err
    names: dict[str, Path] = {}
    by_base: Counter[str] = Counter()
    total = 0
    with archive:
        for info in archive.infolist():
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if info.is_dir() or not parts or parts[0] in ("/", "__MACOSX") or ".." in parts:
                continue
            total += info.file_size
            if total > MAX_ZIP_BYTES:
                raise DramInputError(f"The photo zip unpacks to more than {MAX_ZIP_BYTES // 2**20} MB; "
                                     "upload smaller photos or fewer at a time.")
            target = into.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            relative = "/".join(parts)
            names[relative] = target
            by_base[parts[-1]] += 1
    for relative, target in list(names.items()):
        base = target.name
        if by_base[base] == 1:
            names.setdefault(base, target)
    return names


def listing_category(row: BatchRow, extraction: Extraction) -> str:
    """The row's `category`, else the first article type extracted (lower-cased), else NO_CATEGORY."""
    if row.category:
        return row.category
    types = [s.text for s in extraction.spans if s.attribute == "article_type"]
    return types[0].casefold() if types else NO_CATEGORY


def missing_summary(done: list[tuple[BatchRow, Extraction]]) -> tuple[list[list[Any]], str]:
    """Listings missing attributes that >= 80% of their category's listings in this batch have."""
    groups: dict[str, list[tuple[BatchRow, set[str]]]] = defaultdict(list)
    for row, extraction in done:
        groups[listing_category(row, extraction)].append((row, {s.attribute for s in extraction.spans}))
    missing_rows: list[list[Any]] = []
    lines = []
    for category, members in sorted(groups.items()):
        counts = Counter(a for _, attrs in members for a in attrs)
        usual = sorted(a for a, n in counts.items() if n >= USUAL_SHARE * len(members))
        gaps = 0
        for row, attrs in members:
            lacking = [a for a in usual if a not in attrs]
            if lacking:
                gaps += 1
                missing_rows.append([row.id, category, ", ".join(lacking), len(members), row.text])
        lines.append(f"| {html.escape(category)} | {len(members)} | {', '.join(usual) or '—'} | {gaps} |")
    table = "| category | listings | usually has | listings missing some |\n|---|---|---|---|\n" + "\n".join(lines)
    return missing_rows, table


def run_audit(extractor: Extractor, listing_file: Path, photos_zip: Path | None, tau: float,
              progress: Callable[[float], None] | None = None, out_dir: Path | None = None) -> AuditResult:
    """Audit one batch: extract every usable row, write the values CSV, summarise the gaps.

    Rows that cannot be used (no id, empty text, unknown photo, unreadable photo) become problems and
    the rest are still processed. `progress` is called with the share done (0..1) after each chunk;
    the CSV goes to `out_dir` (default: a new temporary folder).
    """
    rows, problems = read_rows(listing_file)
    work = Path(tempfile.mkdtemp(prefix="dram-audit-"))
    try:
        photos = unpack_photos(photos_zip, work / "photos")
        todo: list[tuple[BatchRow, Path | None]] = []
        for row in rows:
            if not row.id:
                problems.append([row.number, "", "no id", "skipped"])
            elif not row.text:
                problems.append([row.number, row.id, "empty text", "skipped"])
            elif row.image and not photos:
                problems.append([row.number, row.id, f"names the photo {row.image!r} but no photo zip was uploaded",
                                 "skipped"])
            elif row.image and row.image.replace("\\", "/") not in photos:
                problems.append([row.number, row.id, f"unknown image name {row.image!r}: not in the photo zip",
                                 "skipped"])
            else:
                todo.append((row, photos[row.image.replace("\\", "/")] if row.image else None))
        done: list[tuple[BatchRow, Extraction]] = []
        if progress:
            progress(0.0)
        for start in range(0, len(todo), BATCH_CHUNK):
            chunk = todo[start : start + BATCH_CHUNK]
            results = extractor.extract_batch([(r.text, img) for r, img in chunk], tau_r=tau,
                                              batch_size=BATCH_CHUNK)
            for (row, _), result in zip(chunk, results):
                if isinstance(result, DramInputError):
                    problems.append([row.number, row.id, str(result), "skipped"])
                else:
                    done.append((row, result))
            if progress:
                progress(min(1.0, (start + len(chunk)) / max(len(todo), 1)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out_dir = out_dir if out_dir is not None else Path(tempfile.mkdtemp(prefix="dram-audit-out-"))
    out_csv = out_dir / f"{listing_file.stem}-attributes.csv"
    with out_csv.open("w", newline="", encoding="utf-8") as handle_out:
        writer = csv.writer(handle_out)
        writer.writerow(["id", "attribute", "value", "confidence", "unlike_training"])
        for row, extraction in done:
            flag = {True: "yes", False: "no", None: ""}[extraction.unfamiliar]
            for span in extraction.spans:
                writer.writerow([row.id, span.attribute, span.text, f"{span.confidence:.4f}", flag])
    missing, category_table = missing_summary(done)
    problems.sort(key=lambda p: p[0])
    return AuditResult(len(rows), done, missing, problems, category_table, out_csv)
