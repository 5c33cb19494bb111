"""Trained checkpoints registered as model versions, one of them active."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.errors import StoreError
from store.models import (
    ModelVersion,
)
from store.records import ModelVersionInfo, Room


def _model_info(row: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(
        id=row.id,
        name=row.name,
        checkpoint_path=row.checkpoint_path,
        metrics=dict(row.metrics or {}),
        parent_id=row.parent_id,
        active=row.active,
        created=row.created,
    )


def _version_at(session: Session, checkpoint: Path) -> ModelVersionInfo | None:
    """The version registered for the (resolved) checkpoint folder, if any. Versions are registered
    under their resolved path, so one SQL query answers the app's every request; the scan that
    resolves each stored path is for rows whose folder was reached another way (a symlink, a move)."""
    row = session.scalars(select(ModelVersion).where(ModelVersion.checkpoint_path == str(checkpoint))
                          .order_by(ModelVersion.id).limit(1)).first()
    if row is not None:
        return _model_info(row)
    for row in session.scalars(select(ModelVersion).order_by(ModelVersion.id)):
        if Path(row.checkpoint_path).resolve() == checkpoint:
            return _model_info(row)
    return None


class VersionRoom(Room):
    """Model versions registered, found by checkpoint folder, activated."""

    def register_model_version(
        self,
        name: str,
        checkpoint_path: str | os.PathLike[str],
        metrics: Mapping[str, Any],
        parent_id: int | None = None,
        activate: bool = True,
    ) -> int:
        """Record a trained checkpoint; activating it deactivates the others in the same transaction."""
        with self.db.transaction() as session:
            if parent_id is not None and session.get(ModelVersion, parent_id) is None:
                raise StoreError(f"Parent model version {parent_id} does not exist; pass an id from the store.")
            if activate:
                session.execute(update(ModelVersion).values(active=False))
            row = ModelVersion(
                name=name, checkpoint_path=str(Path(checkpoint_path).resolve()), metrics=dict(metrics),
                parent_id=parent_id, active=activate,
            )
            session.add(row)
            session.flush()
            return row.id

    def version_for_checkpoint(
        self, checkpoint: str | os.PathLike[str], metrics: Mapping[str, Any], *, activate: bool | None = None
    ) -> ModelVersionInfo:
        """The version registered for a checkpoint folder, registering it with `metrics` if new.

        A new version is activated when `activate` is True, never when False, and when None only if
        no version is active yet (the first model an app serves becomes the active one).
        """
        wanted = Path(checkpoint).resolve()
        with self.db.transaction(write=False) as session:  # every served request asks: no write lock for it
            known = _version_at(session, wanted)
        if known is not None:
            return known
        with self.db.transaction() as session:
            known = _version_at(session, wanted)  # registered by another program meanwhile?
            if known is not None:
                return known
            if activate is None:
                activate = session.scalar(select(ModelVersion.id).where(ModelVersion.active)) is None
            elif activate:
                session.execute(update(ModelVersion).values(active=False))
            row = ModelVersion(name=wanted.name, checkpoint_path=str(wanted), metrics=dict(metrics), active=activate)
            session.add(row)
            session.flush()
            return _model_info(row)

    def activate_model_version(self, model_version_id: int) -> None:
        """Make an earlier version the one in use again (a rollback)."""
        with self.db.transaction() as session:
            if session.get(ModelVersion, model_version_id) is None:
                raise StoreError(f"There is no model version {model_version_id}; see list_model_versions().")
            session.execute(update(ModelVersion).values(active=ModelVersion.id == model_version_id))

    def active_model_version(self) -> ModelVersionInfo | None:
        with self.db.transaction(write=False) as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.active).order_by(ModelVersion.id.desc()))
            return _model_info(row) if row is not None else None

    def list_model_versions(self) -> list[ModelVersionInfo]:
        with self.db.transaction(write=False) as session:
            return [_model_info(r) for r in session.scalars(select(ModelVersion).order_by(ModelVersion.id))]
