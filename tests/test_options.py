"""One source of defaults: every job's options come from the settings dataclasses, with their defaults."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from dram.nn.config import DramConfig
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
