"""Fine-tuning on the store's corrections: a tiny text-only checkpoint and a real SQLite store in tmp_path."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dram.checkpoint import load_checkpoint, save_checkpoint
from dram.data.listings import Listing
from dram.data.spans import Span
from dram.paths import ROOT
from store import open_store
from tests.tiny_model import ATTRIBUTES, listing, tiny_model, write_text_encoder
from training import finetune as finetune_module
from training.finetune import (
    FinetuneError,
    FinetuneSettings,
    finetune,
    promotion_failures,
    replay_sample,
    split_corrections,
)
from training.loop import TrainSettings

TEXTS = [
    ("red cotton shirt for men", [("red", "colour"), ("cotton", "material"), ("shirt", "article_type")]),
    ("blue denim jeans", [("blue", "colour"), ("denim", "material"), ("jeans", "article_type")]),
    ("black leather belt", [("black", "colour"), ("leather", "material"), ("belt", "article_type")]),
    ("white silk dress for women", [("white", "colour"), ("silk", "material"), ("dress", "article_type")]),
    ("green wool jacket", [("green", "colour"), ("wool", "material"), ("jacket", "article_type")]),
    ("navy cotton socks", [("navy", "colour"), ("cotton", "material"), ("socks", "article_type")]),
]


def data(prefix: str) -> list[Listing]:
    return [listing(text, spans, f"{prefix}-{i}") for i, (text, spans) in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny text-only checkpoint (random weights: fine-tuning only has to run, not to be good)."""
    folder = write_text_encoder(tmp_path_factory.mktemp("tiny-bert"))
    model, tokenizer = tiny_model(folder, "text-only")
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("models") / "v0", {"test": {"tag_f1": 0.1}})


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


def add_corrections(db_url: str, listings: list[Listing]) -> None:
    with open_store(db_url) as store:
        for item in listings:
            listing_id = store.add_listing(item.text, external_id=item.id)
            store.save_correction(listing_id, "alice", item.spans)


def settings(tmp_path: Path) -> TrainSettings:
    return TrainSettings(epochs=1, batch_size=4, seed=13, cache_dir=tmp_path / "features")


def run(source: Path, db_url: str, out: Path, tmp_path: Path, **options):
    with open_store(db_url) as store:
        return finetune(source, store, out, data("replay"), data("heldout"), settings(tmp_path),
                        FinetuneSettings(0.34, 4, **options), progress=False)


def test_finetune_registers_new_version_with_source_as_parent(source: Path, db_url: str, tmp_path: Path) -> None:
    corrections = data("corr")
    corrections[0] = Listing("corr-0", corrections[0].text, spans=[*corrections[0].spans, Span(18, 24, "fit")])
    add_corrections(db_url, corrections)
    out = tmp_path / "v1"

    result = run(source, db_url, out, tmp_path, promote=True)  # a random tiny model's figures mean nothing

    model, _, metrics = load_checkpoint(out)
    assert model.config.attributes == ATTRIBUTES
    assert set(metrics["old"]) == set(metrics["new"]) == {"heldout", "corrections"}
    assert metrics["old"]["heldout"]["n_listings"] == metrics["new"]["heldout"]["n_listings"] == len(TEXTS)
    assert metrics["finetune"]["heldout_corrections"] == 2 and metrics["finetune"]["train_corrections"] == 4
    assert metrics["finetune"]["dropped_spans"] == {"fit": 1}
    assert metrics["finetune"]["minutes"] > 0
    with open_store(db_url) as store:
        versions = {v.id: v for v in store.list_model_versions()}
        active = store.active_model_version()
    assert active is not None and active.id == result.version_id
    assert Path(active.checkpoint_path) == out.resolve()
    parent = versions[active.parent_id]
    assert Path(parent.checkpoint_path) == source.resolve() and not parent.active
    assert parent.metrics == {"test": {"tag_f1": 0.1}}

    second = run(out, db_url, tmp_path / "v2", tmp_path, promote=True)
    assert second.parent_id == result.version_id  # the active version is the parent from now on


def test_no_corrections_is_a_clear_error_and_writes_nothing(source: Path, db_url: str, tmp_path: Path) -> None:
    with open_store(db_url) as store:
        store.save_correction(store.add_listing("red shirt"), "bob", [], status="skipped")
    out = tmp_path / "v1"
    with pytest.raises(FinetuneError, match="no corrections"):
        run(source, db_url, out, tmp_path)
    assert not out.exists()
    with open_store(db_url) as store:
        assert store.list_model_versions() == []


def test_cli_without_corrections_exits_non_zero(source: Path, db_url: str, tmp_path: Path) -> None:
    open_store(db_url).close()
    out = tmp_path / "v1"
    done = subprocess.run([sys.executable, "-m", "training.finetune", "--from", str(source), "--db", db_url,
                           "--out", str(out), "--replay-size", "0"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0
    assert "no corrections" in done.stderr
    assert not out.exists()


def test_crash_during_fit_leaves_model_and_active_version(source: Path, db_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    add_corrections(db_url, data("corr"))
    with open_store(db_url) as store:
        active_id = store.register_model_version("v0", source.resolve(), {})
    before = {p.relative_to(source): p.read_bytes() for p in source.rglob("*") if p.is_file()}

    def crash(*_args, **_kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(finetune_module, "fit", crash)
    out = tmp_path / "v1"
    with pytest.raises(RuntimeError, match="power cut"):
        run(source, db_url, out, tmp_path)

    assert not out.exists() and not list(tmp_path.glob(".v1.*"))
    assert {p.relative_to(source): p.read_bytes() for p in source.rglob("*") if p.is_file()} == before
    with open_store(db_url) as store:
        assert store.active_model_version().id == active_id
        assert [v.id for v in store.list_model_versions()] == [active_id]


def test_existing_out_folder_is_refused(source: Path, db_url: str, tmp_path: Path) -> None:
    add_corrections(db_url, data("corr"))
    with pytest.raises(FinetuneError, match="already exists"):
        run(source, db_url, source, tmp_path)


def test_split_and_replay_are_seeded_and_keep_corrected_listings_out_of_the_replay() -> None:
    corrections = data("corr")
    assert split_corrections(corrections, 0.34, 13) == split_corrections(corrections, 0.34, 13)
    train, heldout = split_corrections(corrections[:1], 0.5, 13)
    assert len(train) == 1 and heldout == []
    replay = data("replay") + [listing("puma shoes", [("shoes", "article_type")], "other")]
    assert [l.id for l in replay_sample(replay, 10, corrections, 13)] == ["other"]
    assert replay_sample(data("replay"), 3, [], 13) == replay_sample(data("replay"), 3, [], 13)


def test_missing_store_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FinetuneError, match="no store"):
        finetune_module.existing_store_url(f"sqlite:///{tmp_path / 'absent.sqlite'}")
    assert not (tmp_path / "absent.sqlite").exists()


def _figures(monkeypatch: pytest.MonkeyPatch, old: dict[str, float], new: dict[str, float]) -> None:
    """Make the held-out figures those given (old model first, then the fine-tuned one).

    A mock on purpose: a tiny random model's figures cannot be steered, and what is under test is
    what the fine-tune does with them. Order of the calls: each held-out set for the old model,
    then each for the new (heldout, then corrections).
    """
    sequence = iter([old["heldout"], old["corrections"], new["heldout"], new["corrections"]])
    monkeypatch.setattr(finetune_module, "evaluate",
                        lambda *_args, **_kwargs: {"tag_f1": next(sequence), "n_listings": 2})


def test_a_worse_model_is_registered_but_not_activated(source: Path, db_url: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    add_corrections(db_url, data("corr"))
    with open_store(db_url) as store:
        active_id = store.register_model_version("v0", source.resolve(), {})
    # The figures measured on 400 corrections: worse on every held-out set.
    _figures(monkeypatch, old={"heldout": 0.9822, "corrections": 0.9923}, new={"heldout": 0.9779, "corrections": 0.9846})

    result = run(source, db_url, tmp_path / "v1", tmp_path)

    with open_store(db_url) as store:
        assert store.active_model_version().id == active_id
        (candidate,) = [v for v in store.list_model_versions() if v.id == result.version_id]
    assert not candidate.active and (tmp_path / "v1").exists()
    promotion = candidate.metrics["promotion"]
    assert promotion["promoted"] is False
    assert any("held-out corrections" in reason and "99.23" in reason and "98.46" in reason
               for reason in promotion["failed"])
    assert any("replay test" in reason and "0.43" in reason for reason in promotion["failed"])


def test_a_save_killed_mid_write_leaves_no_folder_behind_after_the_next_save(source: Path, db_url: str,
                                                                              tmp_path: Path) -> None:
    add_corrections(db_url, data("corr"))
    out = tmp_path / "models" / "v1"
    code = f"""
import os, signal
from pathlib import Path
import dram.checkpoint
from store import open_store
from tests.test_finetune import data, settings
from training.finetune import FinetuneSettings, finetune

def killed_mid_write(tensors, filename, metadata=None):
    Path(filename).write_bytes(b"half a model")
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 while the weights are being written

dram.checkpoint.save_file = killed_mid_write
with open_store({db_url!r}) as store:
    finetune(Path({str(source)!r}), store, Path({str(out)!r}), data("replay"), data("heldout"),
             settings(Path({str(tmp_path)!r})), FinetuneSettings(0.34, 4),
             progress=False)
"""
    killed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    leftovers = [p for p in out.parent.iterdir() if p.name != "v1"]
    assert leftovers and not out.exists()  # the interrupted save's temporary folder
    with open_store(db_url) as store:
        assert [v.name for v in store.list_model_versions()] == ["v0"]  # only the source, registered inactive
        assert len(store.all_corrections()) == len(TEXTS)

    with open_store(db_url) as store:
        finetune(source, store, out, data("replay"), data("heldout"), settings(tmp_path), FinetuneSettings(0.34, 4), progress=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["v1"]


@pytest.mark.parametrize(
    ("new", "options", "active"),
    [
        ({"heldout": 0.9795, "corrections": 0.9923}, {}, True),  # replay 0.27 points lower, corrections equal
        ({"heldout": 0.9779, "corrections": 0.9930}, {}, False),  # replay 0.43 points lower
        ({"heldout": 0.9822, "corrections": 0.9900}, {}, False),  # corrections lower
        ({"heldout": 0.9779, "corrections": 0.9846}, {"promote": True}, True),  # forced
        ({"heldout": 0.9900, "corrections": 0.9990}, {"activate": False}, False),  # never
    ],
)
def test_the_promotion_gate(source: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            new: dict[str, float], options: dict, active: bool) -> None:
    add_corrections(db_url, data("corr"))
    with open_store(db_url) as store:
        store.register_model_version("v0", source.resolve(), {})
    _figures(monkeypatch, old={"heldout": 0.9822, "corrections": 0.9923}, new=new)
    result = run(source, db_url, tmp_path / "v1", tmp_path, **options)
    with open_store(db_url) as store:
        assert (store.active_model_version().id == result.version_id) is active is result.active
    promotion = result.metrics["promotion"]
    assert promotion["forced"] is bool(options.get("promote"))
    assert promotion["promoted"] is (active or "activate" in options)


def test_without_held_out_figures_nothing_vouches_for_the_new_model() -> None:
    assert promotion_failures({}, {}) == [
        "no held-out corrections to compare on (fewer than 2 corrections, or --heldout-corrections 0)",
        "no replay test to compare on (no --heldout data)",
    ]


def test_each_correction_counts_correction_weight_times_an_epoch(source: Path, db_url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    add_corrections(db_url, data("corr"))
    seen = {}
    real_fit = finetune_module.fit

    def counting_fit(model, tokenizer, train, valid, settings, progress=True):
        seen["texts"] = [listing.text for listing in train.listings]
        return real_fit(model, tokenizer, train, valid, settings, progress)

    monkeypatch.setattr(finetune_module, "fit", counting_fit)
    replay = [listing("old " + text, spans, f"old-{i}") for i, (text, spans) in enumerate(TEXTS)]
    with open_store(db_url) as store:
        result = finetune(source, store, tmp_path / "v1", replay, data("heldout"), settings(tmp_path),
                          FinetuneSettings(0.34, 4, correction_weight=3), progress=False)

    counts = {text: seen["texts"].count(text) for text in seen["texts"]}
    assert result.metrics["finetune"]["train_corrections"] == 4  # 6 minus 2 held out
    assert sorted(n for t, n in counts.items() if not t.startswith("old ")) == [3, 3, 3, 3]
    assert sorted(n for t, n in counts.items() if t.startswith("old ")) == [1, 1, 1, 1]
    assert result.metrics["finetune"]["correction_weight"] == 3


def test_correction_weight_below_one_is_refused(source: Path, db_url: str, tmp_path: Path) -> None:
    add_corrections(db_url, data("corr"))
    with pytest.raises(FinetuneError, match="--correction-weight must be at least 1"):
        run(source, db_url, tmp_path / "v1", tmp_path, correction_weight=0)
    assert not (tmp_path / "v1").exists()


def test_correction_weight_follows_the_number_of_corrections() -> None:
    assert finetune_module.correction_weight_for(20) == finetune_module.MAX_CORRECTION_WEIGHT
    assert finetune_module.correction_weight_for(400) == 2  # 800 views an epoch
    assert finetune_module.correction_weight_for(5000) == 1


def test_the_new_checkpoint_gets_its_own_familiarity_reference(source: Path, db_url: str, tmp_path: Path) -> None:
    add_corrections(db_url, data("corr"))
    colours, kinds = ["red", "blue", "black", "white", "green"], ["shirt", "jeans", "belt", "cap"]
    replay = [listing(f"{c} wool {k}", [(c, "colour"), ("wool", "material"), (k, "article_type")], f"r{i}")
              for i, (c, k) in enumerate((c, k) for c in colours for k in kinds)]
    with open_store(db_url) as store:
        finetune(source, store, tmp_path / "v1", replay, data("heldout"), settings(tmp_path),
                 FinetuneSettings(0.34, 4, promote=True), progress=False)
    model, _, _ = load_checkpoint(tmp_path / "v1")
    assert model.familiarity is not None and len(model.familiarity.points) == 4 + 4  # corrections + replayed
    assert model.familiarity.learned_from == "8 listings of the corrections and the replayed listings"


def test_too_few_listings_to_set_a_threshold_drop_the_parents_reference(source: Path, db_url: str,
                                                                        tmp_path: Path) -> None:
    import numpy as np

    from dram.familiarity import build_reference

    parent, tokenizer, _ = load_checkpoint(source)
    parent.familiarity = build_reference(np.ones((3, 32)), np.ones((3, 32)), "the parent's listings")
    with_reference = save_checkpoint(parent, tokenizer, tmp_path / "v0")
    add_corrections(db_url, data("corr"))
    run(with_reference, db_url, tmp_path / "v1", tmp_path, promote=True)  # 2 held out, nothing left to sample
    assert load_checkpoint(tmp_path / "v1")[0].familiarity is None
