"""An attribute an annotator adds reaches Label Studio and comes back: the REAL server of the session
(tests/conftest.py) and a real SQLite store."""
from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Iterator

import pytest
from label_studio_sdk import LabelStudio

from dram.data.spans import Span
from review.training_data import corrections_as_listings
from store import Store, open_store
from store.label_studio import export_to_label_studio, import_from_label_studio
from tests.label_studio_server import TOKEN, Server

pytestmark = pytest.mark.label_studio

MODEL_ATTRIBUTES = ["colour", "material"]
TEXTS = ["Red cotton shirt with a button-down collar", "Blue denim jeans, slim fit"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as opened:
        yield opened


def labels(client: LabelStudio, project_id: int) -> list[str]:
    config = client.projects.get(project_id).label_config
    return [label.get("value") for label in ElementTree.fromstring(config).iter("Label")]


def test_the_labeling_config_grows_with_the_stores_attributes_and_a_new_label_comes_back(
    label_studio: Server, store: Store, tmp_path: Path
) -> None:
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = f"DRAM {tmp_path.name}"
    shirt, jeans = (store.add_listing(text) for text in TEXTS)
    # The app exports with the serving model's attributes.
    first = export_to_label_studio(store, label_studio.url, TOKEN, project, MODEL_ATTRIBUTES)
    assert labels(client, first.project_id) == MODEL_ATTRIBUTES

    store.add_attribute("collar", added_by="alice")
    store.save_correction(shirt, "alice", [Span(0, 3, "colour"), Span(36, 42, "collar")],
                          allowed_attributes=[*MODEL_ATTRIBUTES, *store.attributes()])
    again = export_to_label_studio(store, label_studio.url, TOKEN, project, MODEL_ATTRIBUTES)

    assert again.project_id == first.project_id and again.failures == []
    assert labels(client, first.project_id) == [*MODEL_ATTRIBUTES, "collar"]
    # An annotator marks the new attribute on another listing in Label Studio.
    task = next(t for t in client.tasks.list(project=first.project_id, fields="task_only")
                if t.data["dram_listing_id"] == jeans)
    client.annotations.create(task.id, result=[
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 23, "end": 26, "text": "fit", "labels": ["collar"]}},
        {"from_name": "label", "to_name": "text", "type": "labels",
         "value": {"start": 0, "end": 4, "text": "Blue", "labels": ["colour"]}}])

    imported = import_from_label_studio(store, label_studio.url, TOKEN, project, attributes=MODEL_ATTRIBUTES)

    assert (imported.added, imported.rejected) == (1, [])
    assert store.corrections_for(jeans)[-1].spans == [Span(0, 4, "colour"), Span(23, 26, "collar")]
    training = {l.text: l.spans for l in corrections_as_listings(store)}
    assert training[TEXTS[0]] == [Span(0, 3, "colour"), Span(36, 42, "collar")]
    assert Span(23, 26, "collar") in training[TEXTS[1]]
