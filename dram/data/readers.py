"""The one reader of listing files: canonical JSONL, CSV, Parquet and the public MEPAVE/JAVE, MAE-style
and WDC-PAVE `target_scores` formats, detected by content; photos beside the file or in an uploaded zip.

Training (`read_listings`), the app's Batch audit and import, and `training.predict` on one process
or on Ray all read through `read_listing_file`: each record becomes a `ListingRow` in file order, the
listing or the reason there is none, so a bad line keeps its place with its reason (a problem in the
audit, an error line in predict's output) and nothing is dropped silently. Every format's records go
through `listing_from_record`, so all get the same checks, warnings and `LoadReport` counts. Column
names (`id`, `text`, `image`, `category`, ...) are matched whatever their case and spacing.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from dram.data.listings import Listing, ListingError, LoadReport, UnusableListing, listing_from_record
from dram.data.photo_sources import PhotoFolder, PhotoSource

log = logging.getLogger(__name__)

Format = Literal["auto", "jsonl", "csv", "parquet", "mepave", "mae", "target_scores"]
KNOWN_COLUMNS = ("id", "text", "image", "spans", "values", "category")
_TAG = re.compile(r"<(/?)([^<>/]+)>")


@dataclass
class ListingRow:
    """One record's place in a file: its number (line, CSV or Parquet data row, or item of a JSON list,
    from 1), its id as written ("" when it has none), and the listing or why there is none."""

    number: int
    id: str
    listing: Listing | None = None
    problem: str = ""


@dataclass
class ListingFile:
    """Every row of a listing file in order, and what reading it kept and skipped."""

    path: Path
    rows: list[ListingRow]
    report: LoadReport

    @property
    def listings(self) -> list[Listing]:
        return [row.listing for row in self.rows if row.listing is not None]


@dataclass
class _Record:
    """What a format read at one place of the file: a canonical record, or why that place holds none."""

    number: int
    record: dict | None
    problem: str = ""
    id: Any = None  # of a record that could not be read, where it names one


def read_listings(path: str | Path, format: Format = "auto",
                  attributes: list[str] | None = None) -> tuple[list[Listing], LoadReport]:
    """The usable listings of a file and what was skipped, for training and evaluation."""
    read = read_listing_file(path, format, attributes=attributes)
    return read.listings, read.report


def read_listing_file(path: str | Path, format: Format = "auto", *, photos: PhotoSource | None = None,
                      attributes: list[str] | None = None, max_rows: int | None = None,
                      allow_empty: bool = False) -> ListingFile:
    """Read any supported listing file into rows; `format="auto"` decides from the content and the extension.

    `photos` finds the photos rows name (default: files relative to the listing file's folder);
    `attributes`, when given, are the only ones a span may have. Raises `ListingError` (saying what
    to do) for a file that is missing, not text, of no known format, without `id` or `text` columns,
    longer than `max_rows` or, unless `allow_empty`, empty.
    """
    path = Path(path)
    if not path.is_file():
        raise ListingError(f"The listing file {path} does not exist.")
    kind = _sniff(path) if format == "auto" else format
    if kind not in _FORMATS:
        raise ListingError(f"Unknown listing format {format!r}: use auto, {', '.join(_FORMATS)}.")
    label, records = _FORMATS[kind](path)
    if not records and not allow_empty:
        raise ListingError(f"The listing file {path.name} holds no listings.")
    if max_rows is not None and len(records) > max_rows:
        raise ListingError(f"The listing file {path.name} has {len(records)} listings; at most {max_rows} are "
                           "read at a time. Split the file.")
    return _listing_rows(path, label, records, photos or PhotoFolder(path.parent), attributes)


def _listing_rows(path: Path, label: str, records: list[_Record], photos: PhotoSource,
                  attributes: list[str] | None) -> ListingFile:
    report = LoadReport()
    rows: list[ListingRow] = []
    seen: set[str] = set()
    for item in records:
        report.n_read += 1
        where = f"{path.name} {label} {item.number}"
        row = ListingRow(item.number, _cell(item.record.get("id") if item.record is not None else item.id))
        try:
            if item.record is None:
                raise UnusableListing(item.problem)
            listing = listing_from_record(item.record, where=where, photos=photos, report=report,
                                          attributes=attributes)
            if listing.id in seen:
                raise UnusableListing("the id was already used by an earlier listing")
        except UnusableListing as err:
            row.problem = str(err)
            report.skip_listing(f"{where} (listing {row.id!r})" if row.id else where, row.problem)
        else:
            seen.add(listing.id)
            row.listing = listing
            report.n_loaded += 1
        rows.append(row)
    log.info("%s: %s", path, report.summary())
    return ListingFile(path, rows, report)


def _cell(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ListingError(f"The listing file {path.name} is not UTF-8 text ({exc.reason}); save it as UTF-8.") from exc


def _sniff(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".parquet"):
        return suffix[1:]
    first = next((line.strip() for line in _read_text(path).splitlines() if line.strip()), "")
    if first.startswith("["):
        return "mae"
    if first.startswith("{"):
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            return "mae" if suffix == ".json" or first == "{" else "jsonl"  # a pretty-printed document, or a bad line
        if isinstance(record, dict) and "target_scores" in record:
            return "target_scores"
        if isinstance(record, dict) and ("specs" in record or "title" in record) \
                and not ("spans" in record or "values" in record):
            return "mae"
        return "jsonl"
    if first.count("\t") == 3:
        return "mepave"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "mae"
    raise ListingError(f"Could not tell the format of {path.name}: expected CSV (.csv), canonical JSONL, Parquet, "
                       "MEPAVE (4 tab-separated columns with <attribute>value</attribute> tags) or MAE JSON.")


# ---------------------------------------------------------------- canonical shapes: JSONL, CSV, Parquet

def _canonical(record: dict) -> dict:
    """The record with the columns the reader knows matched whatever their case and spacing ("ID", " Text ")."""
    out: dict = {}
    for key, value in record.items():
        name = str(key).strip()
        out[name.lower() if name.lower() in KNOWN_COLUMNS else name] = value
    return out


def _require_columns(path: Path, records: list[_Record]) -> None:
    found = {key for item in records if item.record is not None for key in item.record}
    missing = [c for c in ("id", "text") if c not in found]
    if found and missing:
        shown = ", ".join(sorted(str(c).lower() for c in found if c)) or "none"
        raise ListingError(f"The listing file {path.name} is missing the column(s) {', '.join(missing)}. It needs "
                           "columns `id` and `text`, and may have `image` (a photo's path beside the file, or its name "
                           f"in the photo zip) and `category`. Columns found: {shown}.")


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    """(line number, JSON value or the `ValueError` saying why the line is none) for each non-blank line.
    A file where no line is a JSON object is not JSON lines at all: `ListingError`."""
    lines: list[tuple[int, Any]] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                lines.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                lines.append((number, ValueError(f"the line is not JSON ({exc.msg})")))
    if lines and not any(isinstance(value, dict) for _, value in lines):
        number, value = lines[0]
        why = value if isinstance(value, ValueError) else "the line is not a JSON object"
        raise ListingError(f"{path.name} is not a JSONL listing file (one JSON object per line): line {number}: {why}.")
    return lines


def _converted(lines: list[tuple[int, Any]], convert: Callable[[dict, int], dict]) -> list[_Record]:
    """Each JSON value as a canonical record: a line that is not a JSON object, or that `convert` refuses
    (a `ValueError`), keeps its place with the reason."""
    records = []
    for number, value in lines:
        if isinstance(value, ValueError):
            records.append(_Record(number, None, str(value)))
        elif not isinstance(value, dict):
            records.append(_Record(number, None, "the line is not a JSON object"))
        else:
            try:
                records.append(_Record(number, convert(value, number)))
            except ValueError as err:
                records.append(_Record(number, None, str(err), value.get("id")))
    return records


def _read_jsonl(path: Path) -> tuple[str, list[_Record]]:
    records = _converted(_json_lines(path), lambda value, _: _canonical(value))
    _require_columns(path, records)
    return "line", records


def _read_csv(path: Path) -> tuple[str, list[_Record]]:
    """A header row, then one listing per row; cells are trimmed and empty ones left out."""
    reader = csv.DictReader(_read_text(path).splitlines())
    records = []
    for number, row in enumerate(reader, start=1):
        extra = row.pop(None, None)  # cells past the header's columns
        record = _canonical({k: v.strip() for k, v in row.items() if v and v.strip()})
        if extra:
            records.append(_Record(number, None, f"it has {len(extra)} more cells than the header has columns; "
                                                 "put text that holds commas in double quotes", record.get("id")))
        else:
            records.append(_Record(number, record))
    _require_columns(path, records)
    return "row", records


def _read_parquet(path: Path) -> tuple[str, list[_Record]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise ListingError(f"Reading {path.name} needs pyarrow: pip install -r requirements-scale.txt.") from err
    records = []
    for number, row in enumerate(pq.read_table(path).to_pylist(), start=1):
        kept = {k: v for k, v in row.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
        records.append(_Record(number, _canonical(kept)))
    _require_columns(path, records)
    return "row", records


# ---------------------------------------------------------------- MEPAVE/JAVE

def _read_mepave(path: Path) -> tuple[str, list[_Record]]:
    """Rows `cid \\t sid \\t raw text \\t text with <attr>value</attr> tags`; offsets index the raw text,
    the sentence id is the listing id and the image id goes to meta["cid"]."""
    records = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) != 4:
            records.append(_Record(number, None, "expected 4 tab-separated columns (cid, sid, text, tagged text), "
                                                 f"found {len(columns)}"))
            continue
        cid, sid, raw, tagged = columns
        try:
            plain, spans = _untag(tagged)
            if plain != raw:
                raise ValueError("the tagged text without its tags differs from the raw text")
        except ValueError as exc:
            records.append(_Record(number, None, str(exc), sid))
            continue
        records.append(_Record(number, {"id": sid, "text": raw, "spans": spans, "cid": cid}))
    return "line", records


def _untag(tagged: str) -> tuple[str, list[dict]]:
    """Strip `<attr>value</attr>` tags, returning the plain text and spans indexing it."""
    plain: list[str] = []
    length = 0
    position = 0
    open_tag: tuple[str, int] | None = None
    spans: list[dict] = []
    for match in _TAG.finditer(tagged):
        piece = tagged[position:match.start()]
        plain.append(piece)
        length += len(piece)
        position = match.end()
        closing, name = match.group(1) == "/", match.group(2)
        if not closing:
            if open_tag is not None:
                raise ValueError(f"tag <{name}> opens inside <{open_tag[0]}>")
            open_tag = (name, length)
        elif open_tag is None or open_tag[0] != name:
            raise ValueError(f"closing tag </{name}> does not match an open tag")
        else:
            spans.append({"start": open_tag[1], "end": length, "attribute": name})
            open_tag = None
    if open_tag is not None:
        raise ValueError(f"tag <{open_tag[0]}> is never closed")
    plain.append(tagged[position:])
    return "".join(plain), spans


# ---------------------------------------------------------------- MAE and WDC-PAVE

def _read_mae(path: Path) -> tuple[str, list[_Record]]:
    """A JSON list (or JSON lines) of `{title, text, specs: {attribute: value}, images: [...]}`."""
    try:
        document = json.loads(_read_text(path))
    except json.JSONDecodeError:
        label, items = "line", _json_lines(path)
    else:
        label, items = "item", list(enumerate(document if isinstance(document, list) else [document], start=1))
    return label, _converted(items, lambda item, number: _mae_record(item, f"{path.stem}-{number}"))


def _mae_record(item: dict, default_id: str) -> dict:
    title = str(item.get("title") or "").strip()
    body = str(item.get("text") or "").strip()
    specs = item.get("specs") or {}
    values = {str(k): [str(x) for x in v] if isinstance(v, (list, tuple)) else [str(v)]
              for k, v in specs.items()} if isinstance(specs, dict) else specs
    images = item.get("images") or []
    record = {"id": item.get("id", default_id), "text": f"{title} {body}".strip(), "values": values}
    if images:
        record["image"] = images[0]
    return record


def _read_target_scores(path: Path) -> tuple[str, list[_Record]]:
    """WDC-PAVE-style JSONL: `{"id", "input" | "input_title" + "input_description", "target_scores"}`.

    Values are located in the text (every occurrence); `{"n/a": 1}` becomes an empty value list,
    "checked and absent", which the slot metric scores and training reads as a negative."""
    return "line", _converted(_json_lines(path),
                              lambda item, number: _target_scores_record(item, f"{path.stem}-{number}"))


def _target_scores_record(item: dict, default_id: str) -> dict:
    if not isinstance(item.get("target_scores"), dict):
        raise ValueError("it has no \"target_scores\" object")
    if isinstance(item.get("input"), str):
        text = item["input"].strip()
    else:
        parts = [str(item.get(k) or "").strip() for k in ("input_title", "input_description")]
        text = "\n".join(p for p in parts if p)
    values = {str(attribute): [str(v) for v in scored if str(v).strip().lower() != "n/a"]
              for attribute, scored in item["target_scores"].items() if isinstance(scored, dict)}
    skip = {"id", "input", "input_title", "input_description", "target_scores"}
    record = {k: v for k, v in item.items() if k not in skip}
    record.update(id=item.get("id", default_id), text=text, values=values)
    return record


_FORMATS: dict[str, Callable[[Path], tuple[str, list[_Record]]]] = {
    "jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet, "mepave": _read_mepave, "mae": _read_mae,
    "target_scores": _read_target_scores}
