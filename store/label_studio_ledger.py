"""What the store knows of its Label Studio round trip: tasks sent, corrections exported, annotations merged back."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dram.data.spans import Span
from store.errors import CorrectionError, StoreError
from store.models import (
    VERDICTS,
    Correction,
    LabelStudioExport,
    ListingRow,
    utcnow,
)
from store.records import (
    CorrectionInfo,
    Room,
    check_spans,
    correction_info,
    current_correction_ids,
)

log = logging.getLogger(__name__)


class LabelStudioLedger(Room):
    """The store side of `store.label_studio`: which listing is which task, which correction which annotation."""

    def unexported_corrections(self) -> list[CorrectionInfo]:
        """Corrections Label Studio does not have yet (failed or never tried exports)."""
        with self.db.transaction(write=False) as session:
            rows = session.scalars(select(Correction).where(~Correction.exported).order_by(Correction.id))
            return [correction_info(r) for r in rows]

    def label_studio_tasks(self, project_id: int) -> dict[int, int]:
        """listing id -> Label Studio task id for the listings already sent to `project_id`."""
        with self.db.transaction(write=False) as session:
            rows = session.execute(
                select(LabelStudioExport.listing_id, LabelStudioExport.task_id).where(
                    LabelStudioExport.project_id == project_id
                )
            )
            return {listing_id: task_id for listing_id, task_id in rows}

    def record_label_studio_task(self, project_id: int, listing_id: int, task_id: int) -> None:
        with self.db.transaction() as session:
            session.add(LabelStudioExport(project_id=project_id, listing_id=listing_id, task_id=task_id))

    def forget_label_studio_task(self, project_id: int, listing_id: int) -> None:
        """The listing's task is gone from Label Studio (deleted there): forget it and its annotations'
        links, and mark the listing's current verdict unexported, so the next export sends both again."""
        with self.db.transaction() as session:
            session.execute(delete(LabelStudioExport).where(LabelStudioExport.project_id == project_id,
                                                            LabelStudioExport.listing_id == listing_id))
            for row in session.scalars(select(Correction).where(Correction.listing_id == listing_id)):
                row.ls_annotation_id = None
            current = session.scalar(select(Correction).where(
                Correction.id.in_(select(current_correction_ids().c.id)), Correction.listing_id == listing_id))
            if current is not None and current.status in VERDICTS:
                current.exported, current.exported_at = False, None

    def mark_exported(self, correction_id: int, ls_annotation_id: int | None) -> None:
        """Remember that Label Studio now holds this correction (as annotation `ls_annotation_id`)."""
        with self.db.transaction() as session:
            row = session.get(Correction, correction_id)
            if row is None:
                raise StoreError(f"There is no correction {correction_id}.")
            row.exported = True
            row.exported_at = utcnow()
            row.ls_annotation_id = ls_annotation_id

    def label_studio_annotations(self) -> dict[int, str]:
        """Label Studio annotation id -> source ('app' or 'label_studio') of the correction last synced with it."""
        with self.db.transaction(write=False) as session:
            rows = session.execute(
                select(Correction.ls_annotation_id, Correction.source).where(Correction.ls_annotation_id.is_not(None))
            )
            return {annotation_id: source for annotation_id, source in rows}

    def label_studio_links(self) -> dict[int, int]:
        """Label Studio annotation id -> listing id, for every annotation a correction is linked to."""
        with self.db.transaction(write=False) as session:
            rows = session.execute(
                select(Correction.ls_annotation_id, Correction.listing_id).where(Correction.ls_annotation_id.is_not(None))
            )
            return {annotation_id: listing_id for annotation_id, listing_id in rows}

    def withdraw_label_studio_annotation(self, ls_annotation_id: int) -> LabelStudioSync:
        """The annotation was deleted in Label Studio: unlink it and, if its correction is the listing's
        current one, add a 'withdrawn' version (the old one stays), which puts the listing back in the
        review queue and out of training. Outcome 'withdrawn', or 'superseded' when a newer correction
        made in the app stands (it is then `conflict`, and stays current)."""
        with self.db.transaction() as session:
            linked = session.scalar(select(Correction).where(Correction.ls_annotation_id == ls_annotation_id))
            if linked is None:
                return LabelStudioSync("unchanged")
            linked.ls_annotation_id = None
            current = session.scalar(select(Correction).where(
                Correction.id.in_(select(current_correction_ids().c.id)), Correction.listing_id == linked.listing_id))
            if current is not None and current.id != linked.id:
                return LabelStudioSync("superseded", correction_info(linked), correction_info(current))
            row = Correction(listing_id=linked.listing_id, annotator=linked.annotator, spans=[], status="withdrawn",
                             source="label_studio", exported=True, exported_at=utcnow(), changed=utcnow())
            session.add(row)
            session.flush()
            return LabelStudioSync("withdrawn", correction_info(row))

    def sync_label_studio_annotation(
        self,
        ls_annotation_id: int,
        listing_id: int,
        annotator: str,
        spans: Iterable[Span | Mapping[str, Any]],
        status: str,
        changed: datetime | None = None,
        what: str | None = None,
        import_id: int | None = None,
    ) -> LabelStudioSync:
        """Bring one Label Studio annotation into the store; see `LabelStudioSync` for the outcomes.

        The annotation is compared with the correction it was last synced with (exported from the
        app or imported). A change adds a new correction and moves the link to it, so every earlier
        version stays; `changed` (Label Studio's `updated_at`) decides whether it becomes current.
        `import_id` is the correction id an export put in the annotation: an export that stored the
        annotation but died before recording it is recognised here, not imported as a stranger.
        """
        if status not in VERDICTS:
            raise CorrectionError(f"Status {status!r} is not one of {list(VERDICTS)}.")
        if not isinstance(annotator, str) or not annotator.strip():
            raise CorrectionError(f"{what or f'Label Studio annotation {ls_annotation_id}'}: no annotator name.")
        spans = list(spans)

        with self.db.transaction() as session:
            listing = session.get(ListingRow, listing_id)
            if listing is None:
                raise StoreError(f"There is no listing {listing_id} for Label Studio annotation {ls_annotation_id}.")
            checked = [
                s.bare().to_dict()
                for s in check_spans(listing.text, spans, None, what=what or f"Label Studio annotation {ls_annotation_id}")
            ]
            linked = _linked_correction(session, ls_annotation_id, listing_id, import_id)
            # Label Studio knows skipped (cancelled) or not; 'accepted' reads back as 'corrected'.
            same_verdict = linked is not None and (linked.status == "skipped") == (status == "skipped")
            if same_verdict and (status == "skipped" or linked.spans == checked):
                return LabelStudioSync("from_store" if linked.source == "app" else "unchanged")
            conflict = None
            if linked is not None:
                # Changed in Label Studio since the last sync. Changed in the app as well?
                conflict = _newer_app_correction(session, linked)
                linked.ls_annotation_id = None
                session.flush()  # the link moves to the new version below
            row = Correction(
                listing_id=listing_id, annotator=annotator.strip(), spans=checked, status=status, source="label_studio",
                ls_annotation_id=ls_annotation_id, exported=True, exported_at=utcnow(), changed=changed or utcnow(),
            )
            session.add(row)
            session.flush()
            return LabelStudioSync("added" if linked is None else "updated", correction_info(row), conflict)


def _linked_correction(session: Session, ls_annotation_id: int, listing_id: int,
                       import_id: int | None) -> Correction | None:
    """The correction the annotation was last synced with: the one linked to it, or the app's correction
    `import_id` names whose export stored the annotation but died before recording it (linked now)."""
    linked = session.scalar(select(Correction).where(Correction.ls_annotation_id == ls_annotation_id))
    if linked is not None or import_id is None:
        return linked
    exported = session.get(Correction, import_id)
    if exported is None or (exported.listing_id, exported.source) != (listing_id, "app") or (
        exported.ls_annotation_id is not None
    ):
        return None
    exported.exported, exported.exported_at = True, utcnow()
    exported.ls_annotation_id = ls_annotation_id
    session.flush()
    log.info("Label Studio annotation %s is correction %s's export; linked", ls_annotation_id, import_id)
    return exported


def _newer_app_correction(session: Session, linked: Correction) -> CorrectionInfo | None:
    """The newest correction made in the app on the listing since `linked`: the other side of a conflict."""
    newer = session.scalar(
        select(Correction)
        .where(Correction.listing_id == linked.listing_id, Correction.source == "app", Correction.id > linked.id)
        .order_by(Correction.id.desc())
    )
    return correction_info(newer) if newer is not None else None


@dataclass(frozen=True)
class LabelStudioSync:
    """What importing one annotation did: 'added' (new), 'updated' (edited in Label Studio: a new
    version), 'unchanged', 'from_store' (the app's own export, untouched), 'withdrawn' (deleted in
    Label Studio) or 'superseded' (deleted there, but a newer app correction stands). `conflict` is the
    app's newer correction of the same listing when both sides changed since the last sync."""

    outcome: str
    correction: CorrectionInfo | None = None
    conflict: CorrectionInfo | None = None
