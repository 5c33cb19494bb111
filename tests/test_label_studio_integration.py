"""Export to and import from a REAL Label Studio server started once for the test session.

The server (`label_studio` fixture in tests/conftest.py) comes from its own virtualenv
(`scripts/install_label_studio.sh` makes `.ls-venv`); without it these tests are skipped.
"""
from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from label_studio_sdk import LabelStudio
from PIL import Image

from dram.data.spans import Span
from review.training_data import corrections_as_listings
from store import open_store
from store.label_studio import LabelStudioError, export_to_label_studio, import_from_label_studio
from tests.label_studio_server import Server

pytestmark = pytest.mark.label_studio

ATTRIBUTES = ["Color", "Material", "Size"]
PROJECT = "DRAM integration"


def _png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(buffer, "PNG")
    return buffer.getvalue()


def test_round_trip_with_a_real_server(label_studio: Server, tmp_path: Path) -> None:
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    red, blue = _png("red"), _png("blue")
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        shirt = store.add_listing("Red cotton shirt, size M", red, external_id="shirt")
        jeans = store.add_listing("Blue denim jeans 32", blue, external_id="jeans")
        mug = store.add_listing("Ceramic mug 👍 white")  # no photo; an emoji shifts Label Studio's offsets
        version = store.register_model_version("dram-v1", "models/v1", {"f1": 0.7})
        shirt_prediction = store.add_prediction(
            shirt, version, [{"start": 0, "end": 3, "attribute": "Color", "confidence": 0.8}], {"Color": 0.8}, 0.5
        )
        store.add_prediction(jeans, version, [{"start": 5, "end": 10, "attribute": "Material", "confidence": 0.3}],
                             {"Material": 0.55}, 0.5)
        store.save_correction(shirt, "alice", [Span(0, 3, "Color"), Span(4, 10, "Material")],
                              prediction_id=shirt_prediction)
        store.save_correction(jeans, "alice", [], status="skipped")

        # Server down first: nothing goes out, nothing is lost.
        with pytest.raises(LabelStudioError, match="could not reach"):
            export_to_label_studio(store, "http://127.0.0.1:9", label_studio.token, PROJECT, ATTRIBUTES)
        with pytest.raises(LabelStudioError, match="refused the API key"):
            export_to_label_studio(store, label_studio.url, "wrong-token-123", PROJECT, ATTRIBUTES)
        assert len(store.unexported_corrections()) == 2

        report = export_to_label_studio(store, label_studio.url, label_studio.token, PROJECT, ATTRIBUTES)
        assert (report.project_created, report.tasks_created, report.predictions_created, report.annotations_created) == (
            True, 3, 2, 2
        )
        assert report.failures == [] and store.unexported_corrections() == []

        project = client.projects.get(report.project_id)
        for tag in ("<Image", "<Text", "<Labels", 'value="Color"', 'value="Material"', 'value="Size"'):
            assert tag in project.label_config
        tasks = {task.data["dram_listing_id"]: task for task in client.tasks.list(project=report.project_id)}
        assert set(tasks) == {shirt, jeans, mug}
        shirt_task = tasks[shirt]
        assert shirt_task.data["image"].startswith("data:image/png;base64,")
        assert base64.b64decode(shirt_task.data["image"].split(",", 1)[1]) == red
        assert tasks[mug].data["image"] == ""
        (prediction,) = client.predictions.list(task=shirt_task.id)
        assert prediction.model_version == "dram-v1" and prediction.score == pytest.approx(0.8)
        assert prediction.result[0]["value"]["labels"] == ["Color"]
        (annotation,) = shirt_task.annotations
        assert sorted((r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in annotation["result"]) == [
            (0, 3, "Color"), (4, 10, "Material")
        ]
        assert [a["was_cancelled"] for a in tasks[jeans].annotations] == [True]

        # A second export duplicates nothing.
        again = export_to_label_studio(store, label_studio.url, label_studio.token, PROJECT, ATTRIBUTES)
        assert (again.project_created, again.tasks_created, again.predictions_created, again.annotations_created) == (
            False, 0, 0, 0
        )
        assert len(list(client.tasks.list(project=report.project_id))) == 3

        # Another annotator labels the mug in Label Studio.
        bob = client.users.create(username="bob", email="bob@dram.test", password="bob-password-123")
        mug_text = "Ceramic mug 👍 white"
        white = (mug_text.index("white"), mug_text.index("white") + len("white"))
        made = client.annotations.create(
            tasks[mug].id,
            completed_by=bob.id,
            result=[
                {"from_name": "label", "to_name": "text", "type": "labels",
                 "value": {"start": 0, "end": 7, "text": "Ceramic", "labels": ["Material"]}},
                # Label Studio counts the emoji as two UTF-16 units.
                {"from_name": "label", "to_name": "text", "type": "labels",
                 "value": {"start": white[0] + 1, "end": white[1] + 1, "text": "white", "labels": ["Color"]}},
            ],
        )

        imported = import_from_label_studio(store, label_studio.url, label_studio.token, PROJECT, attributes=ATTRIBUTES)
        assert (imported.added, imported.updated, imported.from_store, imported.rejected) == (1, 0, 2, [])
        (from_ls,) = [c for c in store.all_corrections() if c.source == "label_studio"]
        assert from_ls.annotator == "bob@dram.test" and from_ls.ls_annotation_id == made.id
        assert from_ls.spans == [Span(0, 7, "Material"), Span(white[0], white[1], "Color")]
        # nothing waits; the listing skipped in the app comes back last, as skipped listings do
        assert store.progress() == (2, 1, 0) and [i.skipped for i in store.review_queue(0.5)] == [True]

        before = store.all_corrections()
        twice = import_from_label_studio(store, label_studio.url, label_studio.token, PROJECT, attributes=ATTRIBUTES)
        assert (twice.added, twice.updated, twice.unchanged) == (0, 0, 1)
        assert store.all_corrections() == before

        # An edit made in Label Studio later updates the imported correction instead of adding one.
        client.annotations.update(made.id, result=[
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 0, "end": 7, "text": "Ceramic", "labels": ["Material"]}},
        ])
        edited = import_from_label_studio(store, label_studio.url, label_studio.token, PROJECT, attributes=ATTRIBUTES)
        assert (edited.added, edited.updated) == (0, 1)
        training = {listing.id: listing for listing in corrections_as_listings(store)}
        assert set(training) == {"shirt", f"listing-{mug}"}
        assert training[f"listing-{mug}"].spans == [Span(0, 7, "Material")]
        assert training["shirt"].image == red  # the stored bytes, no file between the store and training
