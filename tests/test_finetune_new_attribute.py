"""An attribute the model never had, end to end: added to a real SQLite store, marked in corrections,
learned by the real `python -m training.finetune` command, extracted by the new version.

The source is a tiny random-init checkpoint whose value lookup is in the format saved before
lookups kept their counts, so this also shows an older checkpoint growing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dram.checkpoint import LOOKUP_FILE, load_checkpoint, save_checkpoint
from dram.data.listings import Listing
from dram.inference import Extractor
from dram.nn.value_lookup import ValueLookup
from review.training_data import corrections_as_listings
from store import open_store
from tests.tiny_model import ATTRIBUTES, BRANDED, listing, tiny_model, train_listings, write_text_encoder
from training.finetune import usable_corrections

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny text-only joint-decoder checkpoint (the default for photo-less data), lookup in the old format."""
    folder = write_text_encoder(tmp_path_factory.mktemp("tiny-bert"))
    model, tokenizer = tiny_model(folder, "text-only", use_arm=False)
    model.value_lookup = ValueLookup.from_listings(train_listings())
    path = save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("models") / "v0")
    saved = json.loads((path / LOOKUP_FILE).read_text())
    (path / LOOKUP_FILE).write_text(json.dumps({"entries": saved["entries"]}))  # as saved before the counts
    return path


def test_finetune_grows_the_model_by_an_attribute_added_to_the_store(source: Path, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with open_store(db_url) as store:
        store.add_attribute("brand", added_by="alice")
        allowed = [*ATTRIBUTES, *store.attributes()]
        for i, (text, spans) in enumerate(BRANDED):
            item = listing(text, spans, f"c{i}")
            store.save_correction(store.add_listing(text, external_id=item.id), "alice", item.spans,
                                  allowed_attributes=allowed)
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps({"id": l.id, "text": l.text, "spans": [s.to_dict() for s in l.spans]}) + "\n"
                              for l in train_listings()))
    out = tmp_path / "v1"

    done = subprocess.run(
        [sys.executable, "-m", "training.finetune", "--from", str(source), "--db", db_url, "--out", str(out),
         "--replay", str(replay), "--replay-size", "4", "--heldout", str(replay), "--epochs", "40",
         "--batch-size", "3", "--lr-heads", "1e-2", "--lr-encoder", "1e-3", "--promote", "--threads", "1",
         "--cache-dir", str(tmp_path / "features")],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "grows by the attributes it has no output for: brand" in done.stderr
    model, _, metrics = load_checkpoint(out)
    assert model.config.attributes == ATTRIBUTES + ["brand"]
    assert metrics["finetune"]["new_attributes"] == ["brand"] and metrics["finetune"]["dropped_spans"] == {}
    # The lookup learned the training corrections' brands and kept the old entries.
    assert model.value_lookup.entries[("nike",)] == ("brand", 1.0)
    assert model.value_lookup.entries[("cotton",)] == ("material", 1.0)
    # The held-out corrections: the old model could not answer brand, the new one was trained for it.
    assert metrics["old"]["corrections"]["per_attribute"]["brand"]["tp"] == 0
    # The new version extracts brand on the listings it learned from.
    extractor = Extractor.load(out)
    train_ids = {l.id for l in usable_corrections(stored_corrections(db_url), ATTRIBUTES, 0.2, 13).train}
    learned = [text for i, (text, _) in enumerate(BRANDED) if f"c{i}" in train_ids]
    found = [any(s.attribute == "brand" for s in extractor.extract(text).spans) for text in learned]
    assert sum(found) >= len(learned) - 1, f"brand found in {sum(found)} of {len(learned)} training corrections"


def stored_corrections(db_url: str) -> list[Listing]:
    with open_store(db_url) as store:
        return corrections_as_listings(store)
