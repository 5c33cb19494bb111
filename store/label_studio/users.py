"""Who is who on both sides: the app's annotator names as Label Studio users (made for the export
when missing), and Label Studio's users as the names imported corrections carry."""
from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from store.label_studio.connection import NO_RETRY

log = logging.getLogger(__name__)

# Label Studio users made for annotators who exist only in the app (a reserved, undeliverable domain).
ANNOTATOR_DOMAIN = "dram-annotators.invalid"


class Annotators:
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


def annotation_user_id(value: Any, names: dict[int, str]) -> int | None:
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


def user_name(client: LabelStudio, user_id: int | None, cache: dict[int, str]) -> str:
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
