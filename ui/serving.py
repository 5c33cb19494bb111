"""What every tab shares: the served model (built in the background where missing), the corrections store,
and errors shown in plain words."""
from __future__ import annotations

import functools
import html
import logging
import threading
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from dram.errors import CheckpointError, DramInputError
from dram.inference import Extractor
from dram.nn.config import DramConfig
from dram.nn.precision import RunSettings
from store import Store, StoreError, open_store
from store.label_studio import LabelStudioError
from ui.model_build import BuildProgress

log = logging.getLogger("dram.app")

BUILD_HINT = "python -m training.build_default"
# Highlight colours, one per attribute in the model's order (the Extract and Annotate tabs share them).
PALETTE = ["#fde68a", "#bfdbfe", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa", "#a5f3fc", "#e5e7eb"]


class UserFacingError(Exception):
    """Raised inside handlers for problems whose message is meant for the person using the app."""


class ModelBuilding(UserFacingError):
    """The model is still being built: nothing is wrong, the same request works once it is ready."""


USER_ERRORS = (DramInputError, CheckpointError, UserFacingError, StoreError, LabelStudioError)
UNEXPECTED = ("Something went wrong on the server while processing this request; "
              "the details are in the server log.")


def user_errors(fn: Callable) -> Callable:
    """Turn input errors into a readable gr.Error and anything unexpected into a short one, never a trace;
    a request made while the model is being built gets a gr.Warning saying how long, and changes nothing."""
    return _plain_errors(fn, warn_while_building=True)


def api_errors(fn: Callable) -> Callable:
    """`user_errors` for an endpoint only programs call: while the model is being built they get an error
    to act on (try again later), not a warning no program reads and an empty answer."""
    return _plain_errors(fn, warn_while_building=False)


def _plain_errors(fn: Callable, warn_while_building: bool) -> Callable:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ModelBuilding as err:
            if not warn_while_building:
                raise gr.Error(str(err), title="Not ready yet", print_exception=False) from err
            gr.Warning(str(err))
            return gr.skip()
        except USER_ERRORS as err:
            raise gr.Error(html.escape(str(err), quote=False), print_exception=False) from err
        except Exception as err:  # a bug, not the user's fault: log it, show a short note
            log.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(UNEXPECTED, print_exception=False) from err

    return wrapper


def warn_errors(outputs: int) -> Callable[[Callable], Callable]:
    """For a panel someone works in: a problem is a toast (gr.Warning) and every output stays as it
    was (`outputs` of them, 0 for an event without outputs), so nothing on screen is covered or lost
    and work goes on at once."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except USER_ERRORS as err:
                gr.Warning(html.escape(str(err), quote=False))
            except Exception:
                log.exception("unexpected error in %s", fn.__name__)
                gr.Warning(UNEXPECTED)
            if outputs == 0:
                return None
            return tuple(gr.skip() for _ in range(outputs)) if outputs > 1 else gr.skip()

        return wrapper

    return decorate


class ModelHandle:
    """The served model: loaded once, or built first in a background thread (`build_then_load`) while the
    page already answers; a readable reason instead of a crash when it is missing.

    `state` is "building", "ready" or "missing"; `ready` is set once a model is served, and from then on
    `attributes` and `colours` are the served model's (empty while building).
    """

    def __init__(self, path: Path, device: str | None = None, precision: str = RunSettings.precision) -> None:
        self.path = path
        self.device, self.precision = device, precision
        self.extractor: Extractor | None = None
        self.error: str | None = None
        self.build: BuildProgress | None = None  # set while the model is being built
        self.ready = threading.Event()
        self._lock = threading.Lock()

    def load(self) -> "ModelHandle":
        with self._lock:
            if self.extractor is None and self.error is None and self.build is None:
                self._load()
        return self

    def _load(self) -> None:
        try:
            self.extractor = Extractor.load(self.path, self.device, self.precision)
            self.ready.set()
            log.info("loaded %s on %s", self.path, self.extractor.device)
        except CheckpointError as err:
            self.error = (f"No usable model at `{self.path}`. Build the default model with "
                          f"`{BUILD_HINT}`, or point DRAM_CHECKPOINT at a checkpoint folder. ({err})")
            log.error("%s", self.error)

    def build_then_load(self, builder: Callable[[Path, BuildProgress], None]) -> "ModelHandle":
        """Start `builder` (which writes a checkpoint to `path`, telling its progress) in a background
        thread and serve its model once written; requests meanwhile get ModelBuilding."""
        self.build = BuildProgress()
        threading.Thread(target=self._build_and_load, args=(builder, self.build), name="model-build",
                         daemon=True).start()
        return self

    def _build_and_load(self, builder: Callable[[Path, BuildProgress], None], progress: BuildProgress) -> None:
        log.info("no model at %s: building the default model from the bundled listings (a few minutes)", self.path)
        try:
            builder(self.path, progress)
        except Exception as err:  # the page says so; the server log has the trace
            log.exception("building the model failed")
            self.error = f"Building the model at `{self.path}` failed ({err}); the server log has the details."
        with self._lock:  # the served model appears and the build ends at once, for every reader
            if self.error is None:
                self._load()
            self.build = None

    @property
    def state(self) -> str:
        return "building" if self.build else "ready" if self.extractor else "missing"

    def get(self) -> Extractor:
        progress = self.build
        if progress is not None:
            raise ModelBuilding(f"The model is being built ({progress.describe()}); try again when it is ready.")
        self.load()
        if self.extractor is None:
            raise UserFacingError(self.error or "The model is not loaded.")
        return self.extractor

    @property
    def attributes(self) -> list[str]:
        return self.extractor.attributes if self.extractor else []

    @property
    def colours(self) -> dict[str, str]:
        """Each attribute's highlight colour, by its place in the model's attribute list."""
        return {a: PALETTE[i % len(PALETTE)] for i, a in enumerate(self.attributes)}

    def version_in(self, store: Store) -> int:
        """The store's version id of the model being served (registered on first use)."""
        return store.version_for_checkpoint(self.path, self.get().metrics).id

    @property
    def default_tau(self) -> float:
        return self.extractor.config.tau_r if self.extractor else DramConfig.tau_r

    def swap(self, path: Path) -> Extractor:
        """Load another checkpoint and serve it from the next request on, without a restart.

        The new model is loaded before the lock is taken, so requests keep being served by the
        old one meanwhile; a checkpoint that fails to load leaves the old one in place.
        """
        extractor = Extractor.load(path, self.device, self.precision)
        with self._lock:
            self.extractor, self.path, self.error = extractor, Path(path), None
            self.ready.set()
        log.info("now serving %s", path)
        return extractor


class StoreHandle:
    """The corrections store (DRAM_DB_URL or ./dram-store.sqlite), opened on first use."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url
        self._store: Store | None = None
        self._lock = threading.Lock()

    def get(self) -> Store:
        with self._lock:
            if self._store is None:
                try:
                    self._store = open_store(self.url)
                except Exception as err:
                    log.exception("could not open the store")
                    raise UserFacingError(f"The corrections store could not be opened ({err}); check DRAM_DB_URL.") from err
            return self._store
