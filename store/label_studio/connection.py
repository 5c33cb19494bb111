"""Talking to a Label Studio server: logging in, finding a project, and every transport or
authentication failure turned into a `LabelStudioError` that says what to fix."""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached or refused the request; the store is left as it was."""


DEFAULT_TIMEOUT_S = 30.0
# Creates are never retried blindly: a create the server stored before its answer was lost would be
# stored twice. The export looks in Label Studio for what an earlier try created instead.
NO_RETRY: dict[str, Any] = {"max_retries": 0}


@contextlib.contextmanager
def talking_to(url: str, what: str, job: str) -> Iterator[None]:
    """Turn transport and authentication failures into a `LabelStudioError` that says what to fix;
    `job` ('export' or 'import') is what the annotator ran, so the message speaks of it."""
    again = ("run the export again once the server answers: it sends the corrections not yet exported and "
             "repairs any task or prediction this one left half made" if job == "export" else
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


def connect(url: str | None, api_key: str | None, job: str) -> tuple[LabelStudio, str]:
    url = (url or os.environ.get("LABEL_STUDIO_URL") or "").rstrip("/")
    api_key = api_key or os.environ.get("LABEL_STUDIO_API_KEY")
    if not url:
        raise LabelStudioError("No Label Studio address: pass url= or set LABEL_STUDIO_URL (e.g. http://localhost:8080).")
    if not api_key:
        raise LabelStudioError(
            "No Label Studio API key: pass api_key= or set LABEL_STUDIO_API_KEY to the token "
            "shown in Label Studio under Account & Settings."
        )
    with talking_to(url, "log in", job):
        client = LabelStudio(base_url=url, api_key=api_key, timeout=DEFAULT_TIMEOUT_S)
        client.users.whoami()
    return client, url


def find_project(client: LabelStudio, title: str) -> Any | None:
    return next((p for p in client.projects.list() if p.title == title), None)
