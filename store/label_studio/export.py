"""Export: every listing as a task (text plus the photo as a data URI, so it shows without any file
storage set up), the model's spans as predictions and the app's corrections as annotations.

Idempotent: tasks and annotations an earlier try created whose answers were lost are found in
Label Studio and linked, not sent twice; tasks deleted there are made again. The agreement between
annotators goes into the report and the project's description.
"""
from __future__ import annotations

import base64
import logging
import xml.etree.ElementTree as ElementTree
from collections import Counter
from typing import Iterable

from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from store.agreement import AgreementRow
from store.label_studio.connection import NO_RETRY, connect, find_project, talking_to
from store.label_studio.format import (
    IMAGE_NAME,
    TEXT_NAME,
    label_values,
    labeling_config,
    prediction_key,
    prediction_payload,
    region,
)
from store.label_studio.reports import ExportReport, agreement_paragraph, with_agreement
from store.label_studio.users import Annotators
from store.records import CorrectionInfo, ListingInfo, PredictionInfo
from store.repository import Store

log = logging.getLogger(__name__)


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
    client, url = connect(url, api_key, "export")
    attributes = list(dict.fromkeys([*attributes, *store.attributes()]))
    with talking_to(url, f"open project {project_title!r}", "export"):
        project_id, created = _ensure_project(client, project_title, attributes)
    report = ExportReport(project_id=project_id, project_created=created)
    listings = {listing.id: listing for listing in store.list_listings()}
    tasks = store.label_studio_tasks(project_id)
    with talking_to(url, "export tasks", "export"):
        _match_tasks(client, store, listings, tasks, report)
        _export_missing_predictions(client, store, listings, tasks, report)
        _export_new_listings(client, store, listings, tasks, report)
    with talking_to(url, "export corrections", "export"):
        _export_corrections(client, store, listings, tasks, report)
    report.agreement = store.agreement()
    if report.agreement:
        with talking_to(url, "write the agreement into the project's description", "export"):
            _describe_agreement(client, project_id, report.agreement)
    log.info("Label Studio export: %s", report)
    return report


def _match_tasks(client: LabelStudio, store: Store, listings: dict[int, ListingInfo], tasks: dict[int, int],
                 report: ExportReport) -> None:
    """Make `tasks` (listing id -> task id, as the store remembers them) what Label Studio holds: a task
    an earlier try created whose answer was lost is recorded; one deleted there is forgotten, to be made again."""
    remote = _remote_tasks(client, report.project_id, listings)
    for listing_id, task_id in remote.items():
        if listing_id not in tasks:  # a create whose answer was lost: the task is there
            store.record_label_studio_task(report.project_id, listing_id, task_id)
            tasks[listing_id] = task_id
            report.tasks_recovered += 1
    for listing_id in [listing for listing in tasks if listing in listings and listing not in remote]:
        store.forget_label_studio_task(report.project_id, listing_id)  # deleted in Label Studio: made again
        del tasks[listing_id]
        report.tasks_repaired += 1


def _export_missing_predictions(client: LabelStudio, store: Store, listings: dict[int, ListingInfo],
                                tasks: dict[int, int], report: ExportReport) -> None:
    """Every prediction the store holds for a task Label Studio has, and Label Studio lacks (a new
    model's, or one an export died before sending), goes out now."""
    held = _remote_predictions(client, report.project_id)
    for listing_id, task_id in tasks.items():
        if listing_id in listings:
            missing = _missing(store.predictions_for(listing_id), held.get(task_id, Counter()))
            _export_predictions(client, report.project_id, task_id, listings[listing_id], missing, report)


def _export_new_listings(client: LabelStudio, store: Store, listings: dict[int, ListingInfo], tasks: dict[int, int],
                         report: ExportReport) -> None:
    """A task (with its predictions) for every listing without one, added to `tasks`; a refused one waits."""
    for listing in listings.values():
        if listing.id in tasks:
            continue
        try:
            tasks[listing.id] = _export_listing(client, store, report.project_id, listing, report)
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise
            report.failures.append(
                f"Listing {listing.id}: Label Studio answered HTTP {exc.status_code} {exc.body!r} to creating its "
                "task; its corrections wait. Export again: a task it stored anyway is found, not made twice.")


def _export_corrections(client: LabelStudio, store: Store, listings: dict[int, ListingInfo], tasks: dict[int, int],
                        report: ExportReport) -> None:
    """Every unexported correction as an annotation on its listing's task; one without a task waits."""
    users = Annotators(client)
    for correction in store.unexported_corrections():
        if correction.listing_id not in tasks:
            report.failures.append(f"Correction {correction.id}: listing {correction.listing_id} has no task in "
                                   "Label Studio yet (see above); export again.")
            continue
        _export_correction(client, store, users, listings[correction.listing_id], tasks[correction.listing_id],
                           correction, report)


def _ensure_project(client: LabelStudio, title: str, attributes: list[str]) -> tuple[int, bool]:
    """The project titled `title`, created if missing, with a label for every attribute."""
    project = find_project(client, title)
    if project is None:
        created = client.projects.create(title=title, label_config=labeling_config(attributes), request_options=NO_RETRY)
        log.info("Created Label Studio project %r (id %s)", title, created.id)
        return created.id, True
    try:
        existing = label_values(project.label_config or "")
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


def _remote_predictions(client: LabelStudio, project_id: int) -> dict[int, Counter[str]]:
    """task id -> the predictions Label Studio holds for it, by `prediction_key`."""
    held: dict[int, Counter[str]] = {}
    for prediction in client.predictions.list(project=project_id):
        held.setdefault(int(prediction.task), Counter())[prediction_key(prediction.result or [], prediction.model_version)] += 1
    return held


def _missing(predictions: list[PredictionInfo], held: Counter[str]) -> list[PredictionInfo]:
    left = Counter(held)
    missing = []
    for prediction in predictions:
        key = prediction_key([{"id": f"p{prediction.id}-0"}] if prediction.spans else [],
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
                                      **prediction_payload(listing.text, prediction))
            report.predictions_created += 1
        except ApiError as exc:
            if exc.status_code in (401, 403):
                raise
            report.failures.append(f"Prediction {prediction.id} of listing {listing.id}: Label Studio answered "
                                   f"HTTP {exc.status_code} {exc.body!r}; the next export sends it.")


def _already_created(client: LabelStudio, task_id: int, correction_id: int) -> int | None:
    """The annotation an earlier export of this correction created on the task (its `import_id`), if any."""
    for annotation in client.annotations.list(task_id):
        if annotation.import_id == correction_id:
            return annotation.id
    return None


def _export_correction(
    client: LabelStudio,
    store: Store,
    users: Annotators,
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
    result = [region(listing.text, s, f"c{correction.id}-{i}") for i, s in enumerate(correction.spans)]
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
