"""Round trip between the corrections store and a Label Studio project.

Export sends every listing as a task (text plus the photo as a data URI, so it shows without
any file storage set up), the model's spans as predictions and the app's corrections as
annotations. Import brings every change made in Label Studio back as corrections: new
annotations, and edits to annotations that were exported from here or imported before (an edit
is a new version of the correction; the earlier one is kept). When a listing changed in the app
too since the last sync, both are kept, the one made last is current, and the import reports it.

Each export also says how far annotators agree where two reviewed the same listing (`store.agreement`):
in its report, and in the project's description, which Label Studio shows with the project.

Both sides are idempotent: the store remembers which listing is which task and which
correction is which annotation, so running either again sends or adds nothing twice, and a
correction that failed to go out stays unexported until an export succeeds.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator
from xml.sax.saxutils import quoteattr

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from dram.data.spans import Span
from store.agreement import AgreementRow
from store.errors import CorrectionError, StoreBusyError, StoreError
from store.records import CorrectionInfo, ListingInfo, PredictionInfo
from store.repository import Store

log = logging.getLogger(__name__)

FROM_NAME = "label"  # the <Labels> control
TEXT_NAME = "text"  # the <Text> object
IMAGE_NAME = "image"  # the <Image> object
DEFAULT_TIMEOUT_S = 30.0
# Creates are never retried blindly: a create the server stored before its answer was lost would be
# stored twice. The export looks in Label Studio for what an earlier try created instead.
NO_RETRY: dict[str, Any] = {"max_retries": 0}
# Tasks per page when reading annotations back; each page is stored before the next is read.
IMPORT_PAGE_SIZE = 100
# Label Studio users made for annotators who exist only in the app (a reserved, undeliverable domain).
ANNOTATOR_DOMAIN = "dram-annotators.invalid"
# Starts the paragraph of the project's description each export rewrites; the text before it is left alone.
AGREEMENT_HEADING = "Agreement between annotators"


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached or refused the request; the store is left as it was."""


@dataclass
class ExportReport:
    project_id: int
    project_created: bool = False
    tasks_created: int = 0
    tasks_recovered: int = 0  # tasks already in Label Studio that the store had lost track of
    tasks_repaired: int = 0  # tasks the store had sent that are gone from Label Studio: sent again
    predictions_created: int = 0
    annotations_created: int = 0
    annotations_recovered: int = 0  # created by an earlier try whose answer was lost: linked, not re-sent
    failures: list[str] = field(default_factory=list)  # corrections in here stay unexported
    notes: list[str] = field(default_factory=list)  # exported, but not quite as wished (e.g. annotator name)
    agreement: list[AgreementRow] = field(default_factory=list)  # on the listings two annotators reviewed

    def lines(self) -> list[str]:
        """A one-line summary, then every failure and note, then the agreement: what the app shows after an export."""
        summary = (f"Exported to Label Studio project {self.project_id}: {self.tasks_created} tasks, "
                   f"{self.predictions_created} predictions, {self.annotations_created} annotations")
        found = [f"{n} {what} already there from an earlier try" for n, what in
                 ((self.tasks_recovered, "tasks"), (self.annotations_recovered, "annotations")) if n]
        if self.tasks_repaired:
            found.append(f"{self.tasks_repaired} tasks gone from Label Studio sent again, with their current correction")
        failed = [f"{len(self.failures)} failed (they go out with the next export)"] if self.failures else []
        agreement = [agreement_paragraph(self.agreement)] if self.agreement else []
        return ["; ".join([summary, *found, *failed]) + ".", *self.failures, *self.notes, *agreement]


def agreement_paragraph(rows: list[AgreementRow]) -> str:
    """The agreement in one paragraph: 'Agreement between annotators (span F1 ...): colour: F1 85.7% (...); ...'."""
    return (f"{AGREEMENT_HEADING} (span F1 between the first two annotators' verdicts on each listing both "
            f"reviewed): {'; '.join(row.line() for row in rows)}.")


def with_agreement(description: str, paragraph: str) -> str:
    """A project description with its agreement paragraph replaced by `paragraph`; the rest is the owner's."""
    kept = description.split(AGREEMENT_HEADING)[0].rstrip()
    return f"{kept}\n\n{paragraph}" if kept else paragraph


@dataclass
class ImportReport:
    project_id: int
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    from_store: int = 0  # annotations this store exported itself, unchanged in Label Studio since
    unknown_tasks: int = 0  # tasks that were not created from this store
    withdrawn: list[str] = field(default_factory=list)  # annotations deleted in Label Studio
    rejected: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # changed on both sides since the last sync

    def lines(self) -> list[str]:
        """A one-line summary with every count, then each conflict and refusal: what the app shows."""
        counts = [f"{self.added} added", f"{self.updated} updated (edited in Label Studio)",
                  f"{self.unchanged} unchanged", f"{self.from_store} exported from here, unchanged"]
        if self.unknown_tasks:
            counts.append(f"{self.unknown_tasks} task{'s' * (self.unknown_tasks != 1)} not from this store")
        if self.withdrawn:
            counts.append(f"{len(self.withdrawn)} deleted in Label Studio (withdrawn here)")
        if self.conflicts:
            counts.append(f"{len(self.conflicts)} conflict{'s' * (len(self.conflicts) != 1)} (both versions kept)")
        if self.rejected:
            counts.append(f"{len(self.rejected)} refused (nothing stored for them)")
        return [f"Imported from Label Studio project {self.project_id}: {', '.join(counts)}.",
                *self.withdrawn, *self.conflicts, *self.rejected]


def labeling_config(attributes: Iterable[str]) -> str:
    """Photo on top, then the listing text with one label per attribute."""
    labels = "\n".join(f"    <Label value={quoteattr(a)}/>" for a in attributes)
    return (
        "<View>\n"
        f'  <Image name="{IMAGE_NAME}" value="${IMAGE_NAME}" maxWidth="480px"/>\n'
        f'  <Labels name="{FROM_NAME}" toName="{TEXT_NAME}">\n{labels}\n  </Labels>\n'
        f'  <Text name="{TEXT_NAME}" value="${TEXT_NAME}"/>\n'
        "</View>"
    )


def _label_values(config: str) -> list[str]:
    return [label.get("value", "") for label in ElementTree.fromstring(config).iter("Label")]


def to_ls_offset(text: str, index: int) -> int:
    """Label Studio counts text offsets in UTF-16 code units (JavaScript strings), Python in code points."""
    return len(text[:index].encode("utf-16-le")) // 2


def from_ls_offset(text: str, offset: int) -> int:
    units = 0
    for index, char in enumerate(text):
        if units >= offset:
            return index
        units += 2 if ord(char) > 0xFFFF else 1
    # Past the end: an index the span validation rejects instead of silently clamping.
    return len(text) if units >= offset else len(text) + 1


@contextlib.contextmanager
def _talking_to(url: str, what: str, job: str) -> Iterator[None]:
    """Turn transport and authentication failures into a `LabelStudioError` that says what to fix;
    `job` ('export' or 'import') is what the annotator ran, so the message speaks of it."""
    again = ("unexported corrections go out with the next export" if job == "export" else
             "run the import again once the server answers; annotations already imported are recognised, "
             "not added twice")
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise LabelStudioError(
            f"The {job} could not reach Label Studio at {url} while trying to {what} ({exc.__class__.__name__}: "
            f"{exc}). Start the server, or set LABEL_STUDIO_URL to the address it runs at. Nothing was lost: "
            f"{again}."
        ) from exc
    except httpx.TransportError as exc:
        raise LabelStudioError(
            f"The connection to Label Studio at {url} broke during the {job}, while trying to {what} "
            f"({exc.__class__.__name__}: {exc}). Nothing was lost: run the {job} again; what already arrived on "
            "either side is recognised and not duplicated."
        ) from exc
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise LabelStudioError(
                f"Label Studio at {url} refused the API key during the {job}, while trying to {what} "
                f"(HTTP {exc.status_code}). "
                "Set LABEL_STUDIO_API_KEY to your token from Account & Settings; a legacy token also needs "
                "'legacy API tokens' enabled under Organization > API Tokens Settings."
            ) from exc
        raise LabelStudioError(
            f"The {job}: Label Studio at {url} failed to {what}: HTTP {exc.status_code} {exc.body!r}. Nothing was "
            f"lost; {again}."
        ) from exc


def _connect(url: str | None, api_key: str | None, job: str) -> tuple[LabelStudio, str]:
    url = (url or os.environ.get("LABEL_STUDIO_URL") or "").rstrip("/")
    api_key = api_key or os.environ.get("LABEL_STUDIO_API_KEY")
    if not url:
        raise LabelStudioError("No Label Studio address: pass url= or set LABEL_STUDIO_URL (e.g. http://localhost:8080).")
    if not api_key:
        raise LabelStudioError(
            "No Label Studio API key: pass api_key= or set LABEL_STUDIO_API_KEY to the token "
            "shown in Label Studio under Account & Settings."
        )
    with _talking_to(url, "log in", job):
        client = LabelStudio(base_url=url, api_key=api_key, timeout=DEFAULT_TIMEOUT_S)
        client.users.whoami()
    return client, url


def _find_project(client: LabelStudio, title: str) -> Any | None:
    return next((p for p in client.projects.list() if p.title == title), None)


def _ensure_project(client: LabelStudio, title: str, attributes: list[str]) -> tuple[int, bool]:
    """The project titled `title`, created if missing, with a label for every attribute."""
    project = _find_project(client, title)
    if project is None:
        created = client.projects.create(title=title, label_config=labeling_config(attributes), request_options=NO_RETRY)
        log.info("Created Label Studio project %r (id %s)", title, created.id)
        return created.id, True
    try:
        existing = _label_values(project.label_config or "")
    except ElementTree.ParseError:
        log.warning("Could not read the labeling config of project %r; leaving it as it is", title)
        return project.id, False
    missing = [a for a in attributes if a not in existing]
    if missing:
        log.info("Adding labels %s to Label Studio project %r", missing, title)
        client.projects.update(project.id, label_config=labeling_config(existing + missing))
    return project.id, False


def _remote_tasks(client: LabelStudio, project_id: int, listings: dict[int, ListingInfo]) -> dict[int, int]:
    """listing id -> task id for tasks this store created, read from the task data itself."""
    found: dict[int, int] = {}
    for task in client.tasks.list(project=project_id, fields="task_only"):
        data = task.data or {}
        listing = listings.get(data.get("dram_listing_id"))  # type: ignore[arg-type]
        if listing is not None and data.get(TEXT_NAME) == listing.text:
            found.setdefault(listing.id, task.id)
    return found


def _photo_uri(store: Store, sha256: str | None) -> str:
    if sha256 is None:
        return ""
    data = store.photo_bytes(sha256)
    mime = store.photo_mime_type(sha256)
    return f"data:{mime};base64,{base64.b64encode(data or b'').decode('ascii')}"


def _region(text: str, span: Span, region_id: str) -> dict[str, Any]:
    region: dict[str, Any] = {
        "id": region_id,
        "from_name": FROM_NAME,
        "to_name": TEXT_NAME,
        "type": "labels",
        "value": {
            "start": to_ls_offset(text, span.start),
            "end": to_ls_offset(text, span.end),
            "text": text[span.start:span.end],
            "labels": [span.attribute],
        },
    }
    if span.confidence is not None:
        region["score"] = span.confidence
    return region


def _prediction_payload(text: str, prediction: PredictionInfo) -> dict[str, Any]:
    confidences = [1.0 if s.confidence is None else s.confidence for s in prediction.spans]
    return {
        "result": [_region(text, s, f"p{prediction.id}-{i}") for i, s in enumerate(prediction.spans)],
        "model_version": prediction.model_version_name or "unregistered-model",
        "score": min(confidences, default=1.0),
    }


def export_to_label_studio(
    store: Store,
    url: str | None = None,
    api_key: str | None = None,
    project_title: str = "DRAM attribute review",
    attributes: Iterable[str] = (),
) -> ExportReport:
    """Send new listings (with predictions) and unexported corrections to a Label Studio project.

    `attributes` are the serving model's; the project's labels are those and the ones annotators
    added to the store (`Store.attributes()`), so its labeling config grows with the store's set.
    """
    client, url = _connect(url, api_key, "export")
    attributes = list(dict.fromkeys([*attributes, *store.attributes()]))
    with _talking_to(url, f"open project {project_title!r}", "export"):
        project_id, created = _ensure_project(client, project_title, attributes)
    report = ExportReport(project_id=project_id, project_created=created)
    listings = {listing.id: listing for listing in store.list_listings()}
    tasks = store.label_studio_tasks(project_id)

    with _talking_to(url, "export tasks", "export"):
        remote = _remote_tasks(client, project_id, listings)
        for listing_id, task_id in remote.items():
            if listing_id not in tasks:  # a create whose answer was lost: the task is there
                store.record_label_studio_task(project_id, listing_id, task_id)
                tasks[listing_id] = task_id
                report.tasks_recovered += 1
        for listing_id in [listing for listing in tasks if listing in listings and listing not in remote]:
            store.forget_label_studio_task(project_id, listing_id)  # deleted in Label Studio: made again below
            del tasks[listing_id]
            report.tasks_repaired += 1
        # Every prediction the store holds for a task Label Studio has, and Label Studio lacks (a new
        # model's, or one an export died before sending), goes out now.
        held = _remote_predictions(client, project_id)
        for listing_id, task_id in tasks.items():
            if listing_id in listings:
                missing = _missing(store.predictions_for(listing_id), held.get(task_id, Counter()))
                _export_predictions(client, project_id, task_id, listings[listing_id], missing, report)
        for listing in listings.values():
            if listing.id in tasks:
                continue
            try:
                tasks[listing.id] = _export_listing(client, store, project_id, listing, report)
            except ApiError as exc:
                if exc.status_code in (401, 403):
                    raise
                report.failures.append(
                    f"Listing {listing.id}: Label Studio answered HTTP {exc.status_code} {exc.body!r} to creating its "
                    "task; its corrections wait. Export again: a task it stored anyway is found, not made twice.")

    users = _Annotators(client)
    with _talking_to(url, "export corrections", "export"):
        for correction in store.unexported_corrections():
            if correction.listing_id not in tasks:
                report.failures.append(f"Correction {correction.id}: listing {correction.listing_id} has no task in "
                                       "Label Studio yet (see above); export again.")
                continue
            _export_correction(client, store, users, listings[correction.listing_id], tasks[correction.listing_id],
                               correction, report)
    report.agreement = store.agreement()
    if report.agreement:
        with _talking_to(url, "write the agreement into the project's description", "export"):
            _describe_agreement(client, project_id, report.agreement)
    log.info("Label Studio export: %s", report)
    return report


def _describe_agreement(client: LabelStudio, project_id: int, rows: list[AgreementRow]) -> None:
    """Put the agreement where Label Studio users see it: the project's description (rewritten only if changed)."""
    described = client.projects.get(project_id).description or ""
    updated = with_agreement(described, agreement_paragraph(rows))
    if updated != described:
        client.projects.update(project_id, description=updated)


def _export_listing(client: LabelStudio, store: Store, project_id: int, listing: ListingInfo, report: ExportReport) -> int:
    data = {
        TEXT_NAME: listing.text,
        IMAGE_NAME: _photo_uri(store, listing.photo_sha256),
        "dram_listing_id": listing.id,
        "external_id": listing.external_id,
    }
    task = client.tasks.create(project=project_id, data=data, request_options=NO_RETRY)
    store.record_label_studio_task(project_id, listing.id, task.id)
    report.tasks_created += 1
    _export_predictions(client, project_id, task.id, listing, store.predictions_for(listing.id), report)
    return task.id


def _prediction_key(result: list[Any], model_version: str | None) -> str:
    """Which store prediction a Label Studio prediction is: its regions are named after the store's
    prediction id ("p12-0"); one without regions is known only by its model version."""
    first = result[0] if result else None
    region_id = str((first.get("id") if isinstance(first, dict) else getattr(first, "id", "")) or "")
    match = re.match(r"p(\d+)-", region_id)
    return f"p{match.group(1)}" if match else f"empty:{model_version or 'unregistered-model'}"


def _remote_predictions(client: LabelStudio, project_id: int) -> dict[int, Counter[str]]:
    """task id -> the predictions Label Studio holds for it, by `_prediction_key`."""
    held: dict[int, Counter[str]] = {}
    for prediction in client.predictions.list(project=project_id):
        held.setdefault(int(prediction.task), Counter())[_prediction_key(prediction.result or [], prediction.model_version)] += 1
    return held


def _missing(predictions: list[PredictionInfo], held: Counter[str]) -> list[PredictionInfo]:
    left = Counter(held)
    missing = []
    for prediction in predictions:
        key = _prediction_key([{"id": f"p{prediction.id}-0"}] if prediction.spans else [],
                              prediction.model_version_name)
        if left[key] > 0:
            left[key] -= 1
        else:
            missing.append(prediction)
    return missing


def _export_predictions(client: LabelStudio, project_id: int, task_id: int, listing: ListingInfo,
                        predictions: list[PredictionInfo], report: ExportReport) -> None:
    for prediction in predictions:
        try:
            client.predictions.create(task=task_id, project=project_id, request_options=NO_RETRY,
                                      **_prediction_payload(listing.text, prediction))
            report.predictions_created += 1
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise
            report.failures.append(f"Prediction {prediction.id} of listing {listing.id}: Label Studio answered "
                                   f"HTTP {exc.status_code} {exc.body!r}; the next export sends it.")


class _Annotators:
    """Label Studio user ids for the app's annotator names, so exported annotations carry who made them.

    A name that is a Label Studio user's email is that user; any other name gets (once) a user
    of its own, named after it, with an undeliverable address in `ANNOTATOR_DOMAIN`.
    """

    def __init__(self, client: LabelStudio) -> None:
        self.client = client
        self.by_email: dict[str, int] | None = None

    def _read(self) -> dict[str, int]:
        self.by_email = {(u.email or "").lower(): u.id for u in self.client.users.list()}
        return self.by_email

    def user_id(self, name: str) -> tuple[int | None, str | None]:
        """(user id, None), or (None, why not) when Label Studio would not make the user."""
        by_email = self.by_email if self.by_email is not None else self._read()
        if name.lower() in by_email:
            return by_email[name.lower()], None
        email = _annotator_email(name)
        if email in by_email:
            return by_email[email], None
        try:
            user = self.client.users.create(username=email.split("@")[0], email=email, first_name=name[:256],
                                            request_options=NO_RETRY)
        except ApiError as exc:
            if exc.status_code == 401:
                raise
            # The user may be stored although the answer was lost: look again before giving up.
            found = self._read().get(email)
            return (found, None) if found is not None else (None, f"HTTP {exc.status_code} {exc.body!r}")
        by_email[email] = user.id
        return user.id, None


def _annotator_email(name: str) -> str:
    """A stable address for an app-only annotator name (the hash keeps 'Zoë' and 'Zoe' apart)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "annotator"
    return f"{slug}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}@{ANNOTATOR_DOMAIN}"


def _already_created(client: LabelStudio, task_id: int, correction_id: int) -> int | None:
    """The annotation an earlier export of this correction created on the task (its `import_id`), if any."""
    for annotation in client.annotations.list(task_id):
        if annotation.import_id == correction_id:
            return annotation.id
    return None


def _export_correction(
    client: LabelStudio,
    store: Store,
    users: _Annotators,
    listing: ListingInfo,
    task_id: int,
    correction: CorrectionInfo,
    report: ExportReport,
) -> None:
    """Create the correction's annotation once: Label Studio itself is asked first whether it has it."""
    existing = _already_created(client, task_id, correction.id)
    if existing is not None:
        store.mark_exported(correction.id, existing)
        report.annotations_recovered += 1
        return
    user_id, why_not = users.user_id(correction.annotator)
    if why_not is not None:
        report.notes.append(f"Correction {correction.id} shows as the API key's owner in Label Studio: it refused "
                            f"to make a user for annotator {correction.annotator!r} ({why_not}).")
    result = [_region(listing.text, s, f"c{correction.id}-{i}") for i, s in enumerate(correction.spans)]
    try:
        annotation = client.annotations.create(
            task_id, result=result, was_cancelled=correction.status == "skipped", lead_time=0.0,
            completed_by=user_id, import_id=correction.id, request_options=NO_RETRY,
        )
    except ApiError as exc:
        if exc.status_code in (401, 403):
            raise
        report.failures.append(
            f"Correction {correction.id} of listing {listing.id} (task {task_id}): Label Studio answered HTTP "
            f"{exc.status_code} {exc.body!r}; it stays unexported. Export again: if Label Studio stored it "
            "anyway it is found there, not sent twice.")
        return
    store.mark_exported(correction.id, annotation.id)
    report.annotations_created += 1


class AnnotationRefused(CorrectionError):
    """An annotation that is not a well-formed set of text labels with known attributes; nothing was stored."""


def _whole_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _spans_from_result(text: str, result: Any, allowed: set[str], where: str) -> list[Span]:
    """The spans of an annotation's result, or `AnnotationRefused` saying what to fix in Label Studio.

    An empty result is the annotator saying "no values here" (no spans); anything that is not a
    text label with whole-number offsets and a known attribute is refused, never half-imported.
    """
    if result is None:
        return []
    if not isinstance(result, list):
        raise AnnotationRefused(f"{where}: its result is not a list of regions; open it in Label Studio, "
                                "submit it again and import again.")
    spans = []
    for number, region in enumerate(result, start=1):
        if not isinstance(region, dict):
            raise AnnotationRefused(f"{where}: region {number} is not a region object; open the annotation in "
                                    "Label Studio, submit it again and import again.")
        kind = region.get("type")
        if kind != "labels" or region.get("from_name") != FROM_NAME or region.get("to_name") != TEXT_NAME:
            raise AnnotationRefused(
                f"{where}: region {number} is a {kind!r} result from {region.get('from_name')!r}, not a text label "
                f"on the listing text, which is all DRAM stores. Delete that region in Label Studio (label the "
                "words instead) and import again.")
        value = region.get("value") if isinstance(region.get("value"), dict) else {}
        labels = value.get("labels")
        start, end = _whole_number(value.get("start")), _whole_number(value.get("end"))
        if start is None or end is None:
            raise AnnotationRefused(
                f"{where}: region {number} ({value.get('text')!r}) has no whole-number start and end offsets in "
                f"the text (start={value.get('start')!r}, end={value.get('end')!r}); redraw the region in Label "
                "Studio and import again.")
        if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
            raise AnnotationRefused(f"{where}: region {number} ({value.get('text')!r}) has no label; pick an "
                                    "attribute for it in Label Studio and import again.")
        for label in labels:
            if label not in allowed:
                raise AnnotationRefused(
                    f"{where}: label {label!r} is not one of the store's attributes ({', '.join(sorted(allowed))}). "
                    f"If it is a new attribute, add it to the store (`python -m store add-attribute {label}`, or "
                    f"Store.add_attribute({label!r})) and import again; otherwise relabel the region in Label Studio.")
            spans.append(Span(from_ls_offset(text, start), from_ls_offset(text, end), label))
    return spans


def import_from_label_studio(
    store: Store,
    url: str | None = None,
    api_key: str | None = None,
    project_title: str = "DRAM attribute review",
    attributes: Iterable[str] = (),
) -> ImportReport:
    """Bring annotations made in Label Studio into the store as corrections (source 'label_studio').

    `attributes` are the serving model's; with the ones annotators added to the store
    (`Store.attributes()`) they are the labels an import accepts.
    """
    client, url = _connect(url, api_key, "import")
    with _talking_to(url, f"find project {project_title!r}", "import"):
        project = _find_project(client, project_title)
    if project is None:
        raise LabelStudioError(
            f"Label Studio at {url} has no project titled {project_title!r}; export to it first or check the title."
        )
    report = ImportReport(project_id=project.id)
    allowed = set(attributes) | set(store.attributes())
    listings = {listing.id: listing for listing in store.list_listings()}
    synced = store.label_studio_annotations()
    emails: dict[int, str] = {}

    seen: set[int] = set()
    with _talking_to(url, "read annotations", "import"):
        tasks = store.label_studio_tasks(project.id)
        listing_of_task = {task: listing for listing, task in tasks.items()}
        # fields="all" brings the annotations along, skipped (cancelled) ones included.
        for task in client.tasks.list(project=project.id, fields="all", page_size=IMPORT_PAGE_SIZE):
            listing = listings.get(listing_of_task.get(task.id) or (task.data or {}).get("dram_listing_id"))  # type: ignore[arg-type]
            if listing is None or (task.data or {}).get(TEXT_NAME) != listing.text:
                report.unknown_tasks += 1
                continue
            for annotation in task.annotations or []:
                seen.add(int(annotation["id"]))
                _import_annotation(client, store, listing, task.id, annotation, allowed, synced, emails, report)
    # Read to the end: an annotation the store links to a task of this project that is no longer there
    # was deleted in Label Studio.
    for annotation_id, listing_id in store.label_studio_links().items():
        if listing_id in tasks and annotation_id not in seen:
            _withdraw(store, annotation_id, listing_id, tasks[listing_id], report)
    log.info("Label Studio import: %s", report)
    return report


def _withdraw(store: Store, annotation_id: int, listing_id: int, task_id: int, report: ImportReport) -> None:
    outcome = store.withdraw_label_studio_annotation(annotation_id)
    where = f"Task {task_id}, annotation {annotation_id}"
    if outcome.outcome == "withdrawn":
        report.withdrawn.append(f"{where} was deleted in Label Studio: listing {listing_id}'s correction is withdrawn "
                               "(the earlier version is kept) and the listing is back in the review queue.")
    elif outcome.outcome == "superseded" and outcome.conflict is not None:
        report.withdrawn.append(f"{where} was deleted in Label Studio, but listing {listing_id} has a newer correction "
                               f"made in the app ({outcome.conflict.id} by {outcome.conflict.annotator}), which stays "
                               "current; check it in the app.")


def _user_id(value: Any, names: dict[int, str]) -> int | None:
    """A user id from an annotation's `completed_by`/`updated_by` (an id, or an expanded user)."""
    if isinstance(value, dict):
        names.setdefault(int(value["id"]), _name_of(value.get("email"), value.get("first_name"), int(value["id"])))
        return int(value["id"])
    return value if isinstance(value, int) else None


def _name_of(email: str | None, first_name: str | None, user_id: int) -> str:
    """The name a correction carries: the annotator's own for users the export made, else the email."""
    if email and email.endswith(f"@{ANNOTATOR_DOMAIN}") and first_name:
        return first_name
    return email or f"label-studio-user-{user_id}"


def _timestamp(value: Any) -> datetime | None:
    """Label Studio's ISO time (e.g. '2026-12-01T14:26:12.918437Z') in UTC, or None if absent or unreadable."""
    try:
        return datetime.fromisoformat(str(value)).astimezone(timezone.utc) if value else None
    except ValueError:
        return None


def _import_annotation(
    client: LabelStudio,
    store: Store,
    listing: ListingInfo,
    task_id: int,
    annotation: dict[str, Any],
    allowed: set[str],
    synced: dict[int, str],
    emails: dict[int, str],
    report: ImportReport,
) -> None:
    annotation_id = int(annotation["id"])
    # An edit is the editor's verdict; a new annotation its author's.
    who = annotation.get("updated_by") if annotation_id in synced else None
    annotator = _email(client, _user_id(who, emails) or _user_id(annotation.get("completed_by"), emails), emails)
    status = "skipped" if annotation.get("was_cancelled") else "corrected"
    where = f"Task {task_id}, annotation {annotation_id}"
    try:
        spans = [] if status == "skipped" else _spans_from_result(listing.text, annotation.get("result"), allowed, where)
        synced_now = store.sync_label_studio_annotation(
            annotation_id, listing.id, annotator, spans, status, _timestamp(annotation.get("updated_at")), what=where,
            import_id=_whole_number(annotation.get("import_id")),
        )
    except StoreBusyError:
        raise  # not the annotation's fault: the whole import stops, and the next one picks up from here
    except (CorrectionError, StoreError) as exc:
        report.rejected.append(str(exc))
        log.warning("Refused Label Studio annotation %s: %s", annotation_id, exc)
        return
    setattr(report, synced_now.outcome, getattr(report, synced_now.outcome) + 1)
    if synced_now.conflict is not None and synced_now.correction is not None:
        report.conflicts.append(_conflict_message(where, listing.id, synced_now.correction, synced_now.conflict))


def _utc(moment: datetime | None) -> datetime:
    """Stored times come back naive from SQLite; all are UTC."""
    if moment is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _conflict_message(where: str, listing_id: int, imported: CorrectionInfo, app: CorrectionInfo) -> str:
    ls_time, app_time = _utc(imported.changed), _utc(app.changed or app.created)
    current = "Label Studio's" if ls_time >= app_time else "the app's"
    return (
        f"{where}: listing {listing_id} was changed both in the app (correction {app.id} by {app.annotator}, "
        f"{app_time:%Y-%m-%d %H:%M:%S} UTC) and in Label Studio (by {imported.annotator}, {ls_time:%Y-%m-%d %H:%M:%S} "
        f"UTC) since the last sync; both kept, {current} version, made last, is now current. Check it in the app "
        "and save again if the other one was right."
    )


def _email(client: LabelStudio, user_id: int | None, cache: dict[int, str]) -> str:
    """The annotator's name (see `_name_of`); a placeholder if the user cannot be read."""
    if user_id is None:
        return "label-studio-unknown-user"
    if user_id not in cache:
        try:
            user = client.users.get(user_id)
            cache[user_id] = _name_of(user.email, user.first_name, user_id)
        except ApiError as exc:
            if exc.status_code == 401:
                raise
            log.warning("Could not read Label Studio user %s (HTTP %s); using its id", user_id, exc.status_code)
            cache[user_id] = f"label-studio-user-{user_id}"
    return cache[user_id]
