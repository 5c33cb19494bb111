"""Command-line options generated from the settings dataclasses, so each option, its default and its help
are written once, next to the setting they fill (the way transformers' HfArgumentParser works).

A field takes part when its metadata has a "help" (as with HfArgumentParser); the flag is the
field's name with dashes, its type and default come from the dataclass. Optional metadata:
"choices", "aliases" (more flags), "default_help" (what to show instead of the default; "{default}"
is replaced by it) and "decided_later" (the option defaults to None so the job can tell "not given"
and choose by the data, as train does without photos; left None, the setting keeps its default).
`JobSettings` holds what every job takes, `RunSettings`' fields (--precision) among them.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TypeVar

from dram.nn.onnx_engine import ENGINE_VARIABLE
from dram.nn.precision import RunSettings

T = TypeVar("T")
DEFAULT_CACHE = Path(".cache/features")


def _plain_type(annotation: Any) -> type:
    """int for `int`, `int | None` and `Optional[int]`."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings: type,
                names: Iterable[str] | None = None) -> None:
    """One option per described field of the dataclass `settings` (only `names`, when given)."""
    wanted = set(names) if names is not None else None
    hints = typing.get_type_hints(settings)
    for item in dataclasses.fields(settings):
        spec = item.metadata
        if "help" not in spec or (wanted is not None and item.name not in wanted):
            continue
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
        flags = ["--" + item.name.replace("_", "-"), *spec.get("aliases", ())]
        kind = _plain_type(hints[item.name])
        shown = (spec["default_help"].format(default=default) if "default_help" in spec
                 else f"default: {default}" if default not in (None, False) else None)
        options: dict[str, Any] = {"dest": item.name, "default": None if spec.get("decided_later") else default,
                                   "help": spec["help"] + (f" ({shown})" if shown else "")}
        if kind is bool:
            negatable = default or spec.get("decided_later")  # a profile may turn it on: --no-... turns it off
            options["action"] = argparse.BooleanOptionalAction if negatable else "store_true"
        else:
            options["type"] = kind
            if spec.get("choices"):
                options["choices"] = tuple(spec["choices"])
        parser.add_argument(*flags, **options)


def options_given(settings: type, args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values of `settings`' options, leaving out those decided later and still None."""
    given = {}
    for item in dataclasses.fields(settings):
        if "help" not in item.metadata or not hasattr(args, item.name):
            continue
        value = getattr(args, item.name)
        if not (item.metadata.get("decided_later") and value is None):
            given[item.name] = value
    return given


def settings_from(settings: type[T], args: argparse.Namespace, **overrides: Any) -> T:
    """The dataclass `settings` filled from parsed options (fields without an option keep their default)."""
    return settings(**{**options_given(settings, args), **overrides})


@dataclass
class JobSettings(RunSettings):
    """What every job that runs the model takes: how the model runs (`RunSettings`: --precision,
    --encoder-engine), where, with how many threads, and the feature cache."""

    device: str | None = field(default=None, metadata={"help": "cuda or cpu", "default_help": "cuda when available"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads for torch",
                                                        "default_help": "torch's choice"})
    cache_dir: Path = field(default=DEFAULT_CACHE, metadata={"help": "region feature cache"})

    def apply(self) -> None:
        """Set what the settings change for the whole process (torch's thread count, the engine every
        checkpoint loaded in this job runs, which subprocesses inherit)."""
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        if self.encoder_engine:
            os.environ[ENGINE_VARIABLE] = self.encoder_engine
