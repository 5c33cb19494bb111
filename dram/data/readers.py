"""Readers for the public attribute-extraction formats, converted to canonical `Listing`s.

Every reader turns its rows into canonical records and validates them with
`listing_from_record`, so all formats get the same checks, warnings and `LoadReport` counts.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Literal

from dram.data.listings import Listing, ListingError, LoadReport, listing_from_record, read_jsonl

log = logging.getLogger(__name__)

Format = Literal["auto", "jsonl", "mepave", "mae", "target_scores"]
_TAG = re.compile(r"<(/?)([^<>/]+)>")


def read_mepave(path: str | Path) -> list[Listing]:
    """MEPAVE/JAVE rows `cid \\t sid \\t raw text \\t text with <attr>value</attr> tags`.

    Offsets index the raw text; the sentence id is the listing id, the image id goes to meta["cid"].
    """
    return _read_mepave(Path(path))[0]


def read_mae(path: str | Path) -> list[Listing]:
    """MAE-style JSON list or JSONL of `{title, text, specs: {attribute: value}, images: [...]}`."""
    return _read_mae(Path(path))[0]


def read_listings(path: str | Path, format: Format = "auto") -> tuple[list[Listing], LoadReport]:
    """Read any supported listing file; `format="auto"` decides from the content, then the extension."""
    path = Path(path)
    if not path.is_file():
        raise ListingError(f"The listing file {path} does not exist.")
    kind = _sniff(path) if format == "auto" else format
    if kind == "jsonl":
        return read_jsonl(path)
    if kind == "mepave":
        return _read_mepave(path)
    if kind == "mae":
        return _read_mae(path)
    if kind == "target_scores":
        return _read_target_scores(path)
    raise ListingError(f"Unknown listing format {format!r}: use auto, jsonl, mepave, mae or target_scores.")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ListingError(f"{path} is not a listing file: it is not UTF-8 text ({exc.reason}).") from exc


def _sniff(path: Path) -> str:
    first = next((line.strip() for line in _read_text(path).splitlines() if line.strip()), "")
    if first.startswith("["):
        return "mae"
    if first.startswith("{"):
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            return "mae"  # a pretty-printed JSON document rather than one object per line
        if isinstance(record, dict) and "target_scores" in record:
            return "target_scores"
        if isinstance(record, dict) and ("specs" in record or "title" in record) \
                and not ("spans" in record or "values" in record):
            return "mae"
        return "jsonl"
    if first.count("\t") == 3:
        return "mepave"
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.suffix == ".json":
        return "mae"
    raise ListingError(f"Could not tell the format of {path}: expected canonical JSONL, MEPAVE "
                       "(4 tab-separated columns with <attribute>value</attribute> tags) or MAE JSON.")


def _read_mepave(path: Path) -> tuple[list[Listing], LoadReport]:
    report = LoadReport()
    listings: list[Listing] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        report.n_read += 1
        where = f"{path.name} line {number}"
        columns = line.split("\t")
        if len(columns) != 4:
            report.skip_listing(where, f"expected 4 tab-separated columns (cid, sid, text, tagged text), "
                                       f"found {len(columns)}")
            continue
        cid, sid, raw, tagged = columns
        try:
            plain, spans = _untag(tagged)
        except ValueError as exc:
            report.skip_listing(f"{where} (listing {sid!r})", str(exc))
            continue
        if plain != raw:
            report.skip_listing(f"{where} (listing {sid!r})",
                                "the tagged text without its tags differs from the raw text")
            continue
        record = {"id": sid, "text": raw, "spans": spans, "cid": cid}
        listing = listing_from_record(record, where=where, base_dir=path.parent, report=report)
        if listing is not None:
            listings.append(listing)
    log.info("%s: %s", path, report.summary())
    return listings, report


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


def _read_mae(path: Path) -> tuple[list[Listing], LoadReport]:
    text = _read_text(path)
    try:
        document = json.loads(text)
        items = list(enumerate(document if isinstance(document, list) else [document], start=1))
        label = "item"
    except json.JSONDecodeError:
        items, label = [], "line"
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    items.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise ListingError(f"{path} is not MAE JSON: line {number} is not JSON ({exc.msg}).") from exc
    return _listings_from(path, [(f"{path.name} {label} {number}", number, item) for number, item in items],
                          _mae_record)


def _listings_from(path: Path, items: list[tuple[str, int, Any]],
                   convert: Callable[[dict, str], dict]) -> tuple[list[Listing], LoadReport]:
    """Canonical records from a format's items (where, number, item), each validated like any other
    listing; an item that is not a JSON object (or a line that was not JSON: a ValueError) is skipped."""
    report = LoadReport()
    listings: list[Listing] = []
    for where, number, item in items:
        report.n_read += 1
        if isinstance(item, ValueError):
            report.skip_listing(where, str(item))
            continue
        if not isinstance(item, dict):
            report.skip_listing(where, "it is not a JSON object")
            continue
        try:
            record = convert(item, f"{path.stem}-{number}")
        except ValueError as err:
            report.skip_listing(where, str(err))
            continue
        listing = listing_from_record(record, where=where, base_dir=path.parent, report=report)
        if listing is not None:
            listings.append(listing)
    log.info("%s: %s", path, report.summary())
    return listings, report


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


def read_target_scores(path: str | Path) -> list[Listing]:
    """WDC-PAVE-style JSONL: `{"id", "input" | "input_title" + "input_description", "target_scores"}`."""
    return _read_target_scores(Path(path))[0]


def _read_target_scores(path: Path) -> tuple[list[Listing], LoadReport]:
    """Values are located in the text (every occurrence); `{"n/a": 1}` becomes an empty value list,
    "checked and absent", which the slot metric scores and training reads as a negative."""
    items: list[tuple[str, int, Any]] = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                item = ValueError(f"the line is not JSON ({exc.msg})")
            items.append((f"{path.name} line {number}", number, item))
    return _listings_from(path, items, _target_scores_record)


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
