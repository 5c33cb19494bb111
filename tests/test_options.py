"""One source of defaults: every job's options come from the settings dataclasses, with their defaults."""
from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path

import pytest

from dram.nn.config import DramConfig
from dram.nn.precision import RunSettings
from dram.paths import ROOT
from training.loop import TrainSettings
from training.options import JobSettings, add_options, settings_from
from training.predict import PredictSettings
from training.train import MODEL_OPTIONS, add_model_arguments, add_training_arguments, config_from, train_settings_from


def _train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    add_training_arguments(parser)
    return parser


@pytest.mark.parametrize("settings", [TrainSettings, JobSettings])
def test_settings_parsed_from_no_options_are_the_dataclass_defaults(settings: type) -> None:
    args = _train_parser().parse_args([])
    assert settings_from(settings, args) == settings()
    assert train_settings_from(args) == TrainSettings()


def test_a_model_built_from_no_options_has_the_config_defaults() -> None:
    config = config_from(_train_parser().parse_args([]), ["colour"])
    for name in MODEL_OPTIONS:
        assert getattr(config, name) == getattr(DramConfig(attributes=["colour"]), name), name


def test_an_option_sets_its_field_and_a_boolean_can_be_turned_off() -> None:
    args = _train_parser().parse_args(["--lr-heads", "0.01", "--no-value-prior", "--max-tokens", "128",
                                       "--threads", "1", "--cache-dir", "elsewhere"])
    assert train_settings_from(args).lr_heads == 0.01
    assert settings_from(JobSettings, args).threads == 1 and str(settings_from(JobSettings, args).cache_dir) == "elsewhere"
    config = config_from(args, ["colour"])
    assert config.value_prior is False and config.max_tokens == 128


def test_options_decided_by_the_data_stay_unset_until_the_job_decides() -> None:
    args = _train_parser().parse_args([])
    assert args.lr_encoder is None and args.frozen_fraction is None  # train's text-only profile fills these


def test_every_described_field_is_an_option_of_the_same_name() -> None:
    for settings in (TrainSettings, JobSettings, PredictSettings):
        parser = argparse.ArgumentParser()
        add_options(parser, settings)
        described = {f.name for f in dataclasses.fields(settings) if "help" in f.metadata}
        assert {a.dest for a in parser._actions} - {"help"} == described


def test_precision_is_one_job_option_with_its_choices() -> None:
    assert settings_from(JobSettings, _train_parser().parse_args(["--precision", "bf16"])).precision == "bf16"
    assert settings_from(JobSettings, _train_parser().parse_args([])).precision == "auto"
    with pytest.raises(SystemExit):
        _train_parser().parse_args(["--precision", "half"])


def test_finetune_options_are_its_settings_dataclass_with_its_defaults() -> None:
    from training.finetune import EPOCHS, FinetuneSettings, finetune_parser

    required = ["--from", "v0", "--out", "v1"]
    args = finetune_parser().parse_args(required)
    assert settings_from(FinetuneSettings, args) == FinetuneSettings() and args.epochs == EPOCHS
    given = finetune_parser().parse_args([*required, "--heldout-corrections", "0.5", "--replay-size", "0",
                                          "--correction-weight", "2", "--no-activate", "--force"])
    assert settings_from(FinetuneSettings, given) == FinetuneSettings(0.5, 0, 2, activate=False, promote=True)


def _our_python_files() -> list[Path]:
    return [ROOT / "app.py", *(p for package in ("dram", "training", "ui", "review") for p in (ROOT / package).rglob("*.py"))]


SETTINGS_NAMES = {"precision", "seed", "tau_r", "tau_grid", "heldout_corrections", "replay_size", "correction_weight"}


def test_no_function_writes_a_settings_default_again() -> None:
    """A parameter named after a setting takes its default from the dataclass field (`RunSettings.precision`)
    or has none; a literal there is a second home that goes stale (seed 13 in `prepare` did)."""
    again = []
    for path in _our_python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            arguments = [*node.args.posonlyargs, *node.args.args]
            pairs = [*zip(arguments[len(arguments) - len(node.args.defaults):], node.args.defaults),
                     *zip(node.args.kwonlyargs, node.args.kw_defaults)]
            again += [f"{path.relative_to(ROOT)}: {node.name}({arg.arg}={default.value!r})" for arg, default in pairs
                      if arg.arg in SETTINGS_NAMES and isinstance(default, ast.Constant) and default.value is not None]
    assert again == []


def test_no_job_writes_an_option_default_by_hand() -> None:
    """argparse defaults in the jobs come from the settings dataclasses (`add_options`) or named constants."""
    by_hand = [f"{path.relative_to(ROOT)}:{node.lineno}"
               for path in (ROOT / "training").rglob("*.py") for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"
               and any(k.arg == "default" and isinstance(k.value, ast.Constant) and k.value.value is not None
                       for k in node.keywords)]
    assert by_hand == []


def test_the_run_settings_are_every_jobs_options() -> None:
    assert issubclass(JobSettings, RunSettings) and JobSettings().precision == RunSettings().precision
