"""Import: every annotation made or edited in Label Studio comes back as a correction (an edit is a
new version; the earlier one is kept), annotations deleted there are withdrawn, and a listing
changed on both sides since the last sync keeps both versions, the one made last current.

Idempotent: the store knows which annotation is which correction, so importing again adds nothing.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Iterable

from label_studio_sdk import LabelStudio

from store.errors import CorrectionError, StoreBusyError, StoreError
from store.label_studio.connection import LabelStudioError, connect, find_project, talking_to
from store.label_studio.format import TEXT_NAME, spans_from_result, timestamp, whole_number
from store.label_studio.reports import ImportReport
from store.label_studio.users import annotation_user_id, user_name
from store.records import CorrectionInfo, ListingInfo
from store.repository import Store

log = logging.getLogger(__name__)

# Tasks per page when reading annotations back; each page is stored before the next is read.
IMPORT_PAGE_SIZE = 100


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
    client, url = connect(url, api_key, "import")
    with talking_to(url, f"find project {project_title!r}", "import"):
        project = find_project(client, project_title)
    if project is None:
        raise LabelStudioError(
            f"Label Studio at {url} has no project titled {project_title!r}; export to it first or check the title."
        )
    report = ImportReport(project_id=project.id)
    allowed = set(attributes) | set(store.attributes())
    listings = {listing.id: listing for listing in store.list_listings()}
    synced = store.label_studio_annotations()
    names: dict[int, str] = {}  # Label Studio user id -> the name corrections carry

    seen: set[int] = set()
    with talking_to(url, "read annotations", "import"):
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
                _import_annotation(client, store, listing, task.id, annotation, allowed, synced, names, report)
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


def _import_annotation(
    client: LabelStudio,
    store: Store,
    listing: ListingInfo,
    task_id: int,
    annotation: dict[str, Any],
    allowed: set[str],
    synced: dict[int, str],
    names: dict[int, str],
    report: ImportReport,
) -> None:
    annotation_id = int(annotation["id"])
    # An edit is the editor's verdict; a new annotation its author's.
    who = annotation.get("updated_by") if annotation_id in synced else None
    author = annotation_user_id(who, names) or annotation_user_id(annotation.get("completed_by"), names)
    annotator = user_name(client, author, names)
    status = "skipped" if annotation.get("was_cancelled") else "corrected"
    where = f"Task {task_id}, annotation {annotation_id}"
    try:
        spans = [] if status == "skipped" else spans_from_result(listing.text, annotation.get("result"), allowed, where)
        synced_now = store.sync_label_studio_annotation(
            annotation_id, listing.id, annotator, spans, status, timestamp(annotation.get("updated_at")), what=where,
            import_id=whole_number(annotation.get("import_id")),
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
