"""The corrections store on a real SQLite file and a real PostgreSQL server: round trip, queue,
claims, validation and failure modes. Tests taking `store` or `any_url` run on both; those that
poke at SQLite's own locks and files take `db_url` (SQLite only)."""
from __future__ import annotations

import io
import logging
import multiprocessing
import socket
import sqlite3
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from dram.data.spans import Span
from dram.errors import ImageError
from review.training_data import corrections_as_listings
from store import (
    ClaimError,
    CorrectionError,
    StoreBusyError,
    StoreUnavailableError,
    open_store,
)
from store.double_review import DoubleReview
from store.keys import content_key
from store.label_studio import (
    LabelStudioError,
    export_to_label_studio,
    from_ls_offset,
    import_from_label_studio,
    to_ls_offset,
)
from store.models import Correction
from store.records import QueueCounts

TEXT = "Red cotton shirt, size M"


def png(color: str = "red", size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.sqlite'}"


@pytest.fixture
def store(any_url: str):
    with open_store(any_url) as opened:
        yield opened


def test_round_trip_gives_training_listings_with_their_photos(store) -> None:
    photo = png()
    listing_id = store.add_listing(TEXT, photo, external_id="sku-1")
    version = store.register_model_version("v1", "models/v1", {"f1": 0.71})
    prediction_id = store.add_prediction(
        listing_id, version, [{"start": 0, "end": 3, "attribute": "Color", "confidence": 0.9}], {"Color": 0.8}, 0.5
    )
    store.save_correction(listing_id, "alice", [Span(4, 10, "Material"), Span(0, 3, "Color")], prediction_id=prediction_id)

    (listing,) = corrections_as_listings(store)
    assert listing.id == "sku-1" and listing.text == TEXT
    assert listing.spans == [Span(0, 3, "Color"), Span(4, 10, "Material")]
    assert listing.image == photo and "the stored photo" in listing.image.name  # the bytes, named for messages
    assert store.predictions_for(listing_id)[0].spans[0].text == "Red"
    assert store.predictions_for(listing_id)[0].model_version_name == "v1"


def test_latest_correction_wins_and_skipped_listings_are_left_out_of_training(store) -> None:
    first = store.add_listing(TEXT)
    second = store.add_listing("Blue jeans")
    store.save_correction(first, "alice", [Span(0, 3, "Color")])
    store.save_correction(first, "bob", [Span(4, 10, "Material")])
    store.save_correction(second, "alice", [Span(0, 4, "Color")])
    store.save_correction(second, "bob", [], status="skipped")

    (listing,) = corrections_as_listings(store)
    assert listing.id == f"listing-{first}" and listing.spans == [Span(4, 10, "Material")] and listing.image is None


def test_photos_are_stored_once_per_content(db_url: str) -> None:
    store = open_store(db_url)
    red, blue = png("red"), png("blue")
    ids = [store.add_listing(f"listing {i}", red) for i in range(3)] + [store.add_listing("other", blue)]
    hashes = {store.get_listing(i).photo_sha256 for i in ids}
    assert len(hashes) == 2
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as raw:
        assert raw.execute("SELECT count(*), min(width), min(height), min(mime_type) FROM photos").fetchone() == (
            2, 8, 6, "image/png"
        )
    assert store.photo_bytes(store.get_listing(ids[0]).photo_sha256) == red
    with pytest.raises(ImageError, match="could not be read"):
        store.add_listing("broken", b"not an image")
    store.close()


def test_same_external_id_returns_the_stored_listing(store) -> None:
    assert store.add_listing(TEXT, external_id="sku-1") == store.add_listing(TEXT, external_id="sku-1")
    assert len(store.list_listings()) == 1


def test_review_queue_puts_the_least_certain_first_skipped_last_and_leaves_out_saved(store) -> None:
    tau = 0.5
    confident = store.add_listing("confident listing")
    unsure = store.add_listing("unsure listing")
    tie_low = store.add_listing("tie with low confidence")
    tie_high = store.add_listing("tie with high confidence")
    unpredicted = store.add_listing("never predicted")
    corrected = store.add_listing("already corrected")
    skipped = store.add_listing("already skipped")
    span = lambda c: [{"start": 0, "end": 3, "attribute": "Color", "confidence": c}]  # noqa: E731
    store.add_prediction(confident, None, span(0.9), {"Color": 0.95, "Size": 0.02}, tau)
    store.add_prediction(unsure, None, span(0.9), {"Color": 0.52, "Size": 0.1}, tau)
    store.add_prediction(tie_low, None, span(0.2), {"Color": 0.7}, tau)
    store.add_prediction(tie_high, None, span(0.8), {"Color": 0.3}, tau)
    for listing in (corrected, skipped):
        store.add_prediction(listing, None, span(0.1), {"Color": 0.5}, tau)
    store.save_correction(corrected, "alice", [])
    store.save_correction(skipped, "alice", [], status="skipped")

    queue = store.review_queue(tau)
    assert [item.listing_id for item in queue] == [unsure, tie_low, tie_high, confident, unpredicted, skipped]
    assert queue[0].margin == pytest.approx(0.02) and queue[-1].skipped and not queue[0].skipped
    assert [item.listing_id for item in store.review_queue(tau, limit=2)] == [unsure, tie_low]
    assert store.progress() == QueueCounts(saved=1, skipped=1, waiting=5)
    # a skipped listing saved later counts as saved, and leaves the queue
    store.save_correction(skipped, "bob", [])
    assert skipped not in [item.listing_id for item in store.review_queue(tau)]
    assert store.progress() == QueueCounts(saved=2, skipped=0, waiting=5)


def test_queue_uses_the_newest_prediction_of_a_listing(store) -> None:
    listing = store.add_listing(TEXT)
    store.add_prediction(listing, None, [], {"Color": 0.5}, 0.5)
    newest = store.add_prediction(listing, None, [], {"Color": 0.9}, 0.5)
    (item,) = store.review_queue(0.5)
    assert item.prediction_id == newest and item.margin == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("spans", "kwargs", "message"),
    [
        ([Span(0, 99, "Color")], {}, "not inside the text"),
        ([Span(5, 5, "Color")], {}, "not inside the text"),
        ([Span(5, 3, "Color")], {}, "not inside the text"),
        ([Span(-1, 3, "Color")], {}, "not inside the text"),
        ([Span(0, 3, "Flavour")], {"allowed_attributes": ["Color", "Size"]}, "not one of"),
        ([{"start": 0, "end": 3}], {}, "needs integer"),
        ([{"start": 0.9, "end": 3, "attribute": "Color"}], {}, "needs integer"),
        ([{"start": 0, "end": 3.0, "attribute": "Color"}], {}, "needs integer"),
        ([{"start": True, "end": 3, "attribute": "Color"}], {}, "needs integer"),
        ([{"start": "0", "end": 3, "attribute": "Color"}], {}, "needs integer"),
        ([Span(0, 3, "Color"), Span(0, 3, "Color")], {}, "more than once"),
        ([Span(0, 3, "Color"), Span(2, 10, "Color")], {}, "overlap"),
        ([], {"annotator": 42}, "annotator name"),
        ([], {"annotator": None}, "annotator name"),
        ([{"start": 0, "end": 3, "attribute": " "}], {}, "no attribute"),
        ([], {"annotator": "  "}, "annotator name"),
        ([], {"status": "maybe"}, "not one of"),
    ],
)
def test_bad_corrections_are_refused_and_nothing_is_saved(store, spans, kwargs, message) -> None:
    listing = store.add_listing(TEXT)
    arguments = {"annotator": "alice", "status": "corrected", **kwargs}
    with pytest.raises(CorrectionError, match=message):
        store.save_correction(listing, spans=spans, **arguments)
    assert store.all_corrections() == []


def test_the_same_words_may_carry_two_different_attributes(store) -> None:
    listing = store.add_listing(TEXT)
    store.save_correction(listing, "alice", [Span(0, 3, "Color"), Span(0, 3, "Brand")])
    assert [s.attribute for s in store.all_corrections()[0].spans] == ["Brand", "Color"]


def test_a_correction_cannot_point_at_another_listings_prediction(store) -> None:
    first, second = store.add_listing(TEXT), store.add_listing("Blue jeans")
    prediction = store.add_prediction(first, None, [], {}, 0.5)
    with pytest.raises(CorrectionError, match="not a prediction for listing"):
        store.save_correction(second, "alice", [], prediction_id=prediction)


def test_model_versions_keep_one_active_and_allow_rollback(store) -> None:
    assert store.active_model_version() is None
    first = store.register_model_version("v1", "models/v1", {"f1": 0.6})
    second = store.register_model_version("v2", "models/v2", {"f1": 0.7}, parent_id=first)
    candidate = store.register_model_version("v3", "models/v3", {"f1": 0.5}, parent_id=second, activate=False)
    active = store.active_model_version()
    assert active is not None and active.id == second and active.parent_id == first and active.metrics == {"f1": 0.7}
    store.activate_model_version(first)
    assert store.active_model_version().id == first
    assert [v.active for v in store.list_model_versions()] == [True, False, False] and candidate == 3


def test_migrations_are_applied_and_the_store_reopens_with_its_data(db_url: str) -> None:
    with open_store(db_url) as store:
        listing = store.add_listing(TEXT)
        store.save_correction(listing, "alice", [Span(0, 3, "Color")])
    with open_store(db_url) as store:
        assert [c.spans for c in store.all_corrections()] == [[Span(0, 3, "Color")]]
        with store.db.engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == "0005"
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_url_comes_from_env_then_defaults_to_a_file_in_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DRAM_DB_URL", raising=False)
    with open_store() as store:
        store.add_listing(TEXT)
    assert (tmp_path / "dram-store.sqlite").exists()
    monkeypatch.setenv("DRAM_DB_URL", f"sqlite:///{tmp_path / 'from-env' / 'db.sqlite'}")
    with open_store() as store:
        assert store.list_listings() == []
    assert (tmp_path / "from-env" / "db.sqlite").exists()


def _save_many(url: str, listing_id: int, worker: int, count: int) -> None:
    with open_store(url) as store:
        for i in range(count):
            store.save_correction(listing_id, f"worker-{worker}", [Span(0, 3, "Color")] if i % 2 else [])


def test_several_processes_saving_at_once_lose_nothing(any_url: str) -> None:
    db_url = any_url
    with open_store(db_url) as store:
        listing = store.add_listing(TEXT)
    workers, per_worker = 4, 25
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_save_many, args=(db_url, listing, w, per_worker)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    with open_store(db_url) as store:
        corrections = store.all_corrections()
    assert len(corrections) == workers * per_worker
    assert {c.annotator for c in corrections} == {f"worker-{w}" for w in range(workers)}


def _hold_exclusive_lock(path: str) -> sqlite3.Connection:
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_locked_database_is_retried_then_reported_and_nothing_is_lost(db_url: str, caplog) -> None:
    path = db_url.removeprefix("sqlite:///")
    with open_store(db_url, busy_timeout_s=0.05, retries=2, backoff_s=0.01) as store:
        listing = store.add_listing(TEXT)
        store.save_correction(listing, "alice", [Span(0, 3, "Color")])
        holder = _hold_exclusive_lock(path)
        try:
            with caplog.at_level(logging.WARNING, logger="store.db"), pytest.raises(StoreBusyError, match="try again"):
                store.save_correction(listing, "bob", [Span(4, 10, "Material")])
        finally:
            holder.rollback()
            holder.close()
        assert len([r for r in caplog.records if "locked" in r.getMessage()]) == 2
        store.save_correction(listing, "bob", [Span(4, 10, "Material")])
        assert [c.annotator for c in store.all_corrections()] == ["alice", "bob"]


def test_opening_a_migrated_store_does_not_wait_for_a_writer(db_url: str) -> None:
    """A fine-tune or an app start only reads the schema version: a long write elsewhere must not stop it."""
    with open_store(db_url) as store:
        store.save_correction(store.add_listing(TEXT), "alice", [Span(0, 3, "Color")])
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another program is in the middle of a write
    try:
        with open_store(db_url, busy_timeout_s=0.05, retries=0) as store:
            assert len(store.all_corrections()) == 1
    finally:
        holder.rollback()
        holder.close()


def test_the_served_models_version_is_found_while_another_program_writes(db_url: str) -> None:
    """The app asks for its model's version on every extraction: a known one must not wait for the write lock."""
    with open_store(db_url) as store:
        known = store.version_for_checkpoint("models/x", {}).id
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with open_store(db_url, busy_timeout_s=0.05, retries=0) as store:
            assert store.version_for_checkpoint("models/x", {}).id == known
            with pytest.raises(StoreBusyError):
                store.version_for_checkpoint("models/y", {})  # a new one is a write, and waits
    finally:
        holder.rollback()
        holder.close()


def test_a_lock_released_during_the_retries_lets_the_save_through(db_url: str) -> None:
    path = db_url.removeprefix("sqlite:///")
    with open_store(db_url, busy_timeout_s=0.05, retries=6, backoff_s=0.05) as store:
        listing = store.add_listing(TEXT)
        holder = _hold_exclusive_lock(path)
        releaser = threading.Timer(0.3, lambda: (holder.rollback(), holder.close()))
        releaser.start()
        store.save_correction(listing, "alice", [Span(0, 3, "Color")])
        releaser.join()
        assert len(store.all_corrections()) == 1


def test_an_exception_inside_a_save_leaves_nothing_half_written(store) -> None:
    listing = store.add_listing(TEXT)

    with pytest.raises(RuntimeError, match="simulated crash"), store.db.transaction() as session:
        session.add(Correction(listing_id=listing, annotator="alice", spans=[], status="corrected"))
        session.flush()  # the row is in the database transaction...
        raise RuntimeError("simulated crash")  # ...when the save dies
    assert store.all_corrections() == []
    assert store.progress() == QueueCounts(saved=0, skipped=0, waiting=1)


def _die_mid_save(url: str, listing_id: int) -> None:
    import os

    with open_store(url) as store, store.db.transaction() as session:
        session.add(Correction(listing_id=listing_id, annotator="ghost", spans=[], status="corrected"))
        session.flush()
        os._exit(3)  # the process is gone with the transaction open


def test_a_process_killed_mid_save_leaves_nothing_behind(any_url: str) -> None:
    db_url = any_url
    with open_store(db_url) as store:
        listing = store.add_listing(TEXT)
    process = multiprocessing.get_context("spawn").Process(target=_die_mid_save, args=(db_url, listing))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 3
    with open_store(db_url, busy_timeout_s=1) as store:
        assert store.all_corrections() == []
        store.save_correction(listing, "alice", [])
        assert len(store.all_corrections()) == 1


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_label_studio_down_raises_and_keeps_the_correction_unexported(db_url: str) -> None:
    store = open_store(db_url)
    listing = store.add_listing(TEXT, png())
    correction = store.save_correction(listing, "alice", [Span(0, 3, "Color")])
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(LabelStudioError, match="The export could not reach Label Studio.*run the export again.*repairs any task or prediction"):
        export_to_label_studio(store, url, "some-token", "DRAM test", ["Color"])
    with pytest.raises(LabelStudioError, match="The import could not reach Label Studio.*run the import again") as down:
        import_from_label_studio(store, url, "some-token", "DRAM test")
    assert "export" not in str(down.value)  # an import that failed speaks of the import
    assert [c.id for c in store.unexported_corrections()] == [correction]


def test_label_studio_settings_missing_say_what_to_set(store, monkeypatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(LabelStudioError, match="LABEL_STUDIO_URL"):
        export_to_label_studio(store, project_title="DRAM test", attributes=["Color"])
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:1")
    with pytest.raises(LabelStudioError, match="LABEL_STUDIO_API_KEY"):
        import_from_label_studio(store, project_title="DRAM test")


def test_label_studio_offsets_count_utf16_units() -> None:
    text = "a👕b"
    assert [to_ls_offset(text, i) for i in range(4)] == [0, 1, 3, 4]
    assert [from_ls_offset(text, u) for u in (0, 1, 3, 4)] == [0, 1, 2, 3]
    assert from_ls_offset(text, 9) > len(text)


def test_the_attribute_set_grows_once_per_name_and_refuses_blank_names(store) -> None:
    assert store.attributes() == []
    assert store.add_attribute("fabric", added_by="alice") is True
    assert store.add_attribute("fabric", added_by="bob") is False
    store.add_attribute("collar")
    assert store.attributes() == ["collar", "fabric"]
    for bad in ("", "  ", " fabric", 3):
        with pytest.raises(CorrectionError, match="Attribute name"):
            store.add_attribute(bad)


def _store_at_revision_0001(path: Path) -> None:
    """A store file as the previous release left it: schema 0001 with one correction in it."""
    from alembic import command
    from alembic.config import Config

    from store.db import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    command.upgrade(config, "0001")
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO listings (id, text, created) VALUES (1, ?, '2025-11-24 10:00:00')", (TEXT,))
        raw.execute(
            "INSERT INTO corrections (listing_id, annotator, spans, status, source, created, updated, exported) "
            "VALUES (1, 'alice', '[{\"start\": 0, \"end\": 3, \"attribute\": \"Color\"}]', 'corrected', 'app', "
            "'2025-11-24 10:01:00', '2025-11-24 10:01:00', 0)"
        )


def test_a_store_from_the_previous_release_opens_migrated_with_its_corrections(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _store_at_revision_0001(path)
    with open_store(f"sqlite:///{path}") as store:
        (correction,) = store.all_corrections()
        assert correction.annotator == "alice" and correction.spans == [Span(0, 3, "Color")]
        assert store.attributes() == []
        store.save_correction(1, "bob", [Span(4, 10, "Material")])
        (listing,) = corrections_as_listings(store)
        assert listing.spans == [Span(4, 10, "Material")]
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version").fetchone() == ("0005",)
        assert raw.execute("SELECT count(*) FROM corrections WHERE changed IS NULL").fetchone() == (0,)
        assert raw.execute("SELECT content_key FROM listings").fetchone() == (content_key(TEXT, None),)
    with open_store(f"sqlite:///{path}") as store:  # the old listing is found by its content, as a new one would be
        assert store.find_listing("  " + TEXT.upper()) == 1


def test_the_import_message_shows_every_count_conflict_and_refusal() -> None:
    from store.label_studio import ImportReport

    report = ImportReport(project_id=3, added=1, updated=2, unchanged=4, from_store=3, unknown_tasks=1,
                          rejected=["Task 9, annotation 12: label 'fabric' is not one of the store's attributes"],
                          conflicts=["Task 8, annotation 11: listing 5 was changed both in the app and in Label Studio"])
    summary, *details = report.lines()
    for part in ("project 3", "1 added", "2 updated", "4 unchanged", "3 exported from here, unchanged",
                 "1 task not from this store", "1 conflict", "1 refused"):
        assert part in summary, part
    assert details == report.conflicts + report.rejected


def test_an_exported_accepted_correction_comes_back_unchanged_not_as_an_edit(store) -> None:
    """Label Studio has no 'accepted': an untouched export of one reads back as 'corrected' with the same spans."""
    listing = store.add_listing(TEXT)
    accepted = store.save_correction(listing, "alice", [Span(0, 3, "Color")], status="accepted")
    store.mark_exported(accepted, 77)
    same = store.sync_label_studio_annotation(77, listing, "alice", [Span(0, 3, "Color")], "corrected")
    edited = store.sync_label_studio_annotation(77, listing, "bob", [Span(4, 10, "Material")], "corrected")
    assert (same.outcome, edited.outcome) == ("from_store", "updated")
    assert [c.status for c in store.corrections_for(listing)] == ["accepted", "corrected"]


def test_the_command_line_adds_and_lists_attributes(db_url: str) -> None:
    from store.__main__ import main

    assert main(["--db", db_url, "add-attribute", "fabric", "--by", "alice"]) == 0
    assert main(["--db", db_url, "add-attribute", "fabric"]) == 0
    assert main(["--db", db_url, "add-attribute", " "]) == 2
    with open_store(db_url) as store:
        assert store.attributes() == ["fabric"]


# ---------------------------------------------------------------- PostgreSQL failure modes


def test_a_held_postgres_lock_is_waited_for_then_reported_and_nothing_is_lost(postgres) -> None:
    import psycopg

    url = postgres.create_database()
    with open_store(url, busy_timeout_s=0.2) as store:
        listing = store.add_listing(TEXT)
        store.save_correction(listing, "alice", [Span(0, 3, "Color")])
        dbname = url.rsplit("/", 1)[1]
        with psycopg.connect(host=postgres.host, port=postgres.port, user="postgres", dbname=dbname) as holder:
            holder.execute("LOCK TABLE corrections IN EXCLUSIVE MODE")  # another program mid-write, transaction open
            started = time.monotonic()
            with pytest.raises(StoreBusyError, match="another program's transaction.*not saved.*try again"):
                store.save_correction(listing, "bob", [Span(4, 10, "Material")])
            assert time.monotonic() - started >= 0.2  # it waited lock_timeout first
            holder.rollback()
        store.save_correction(listing, "bob", [Span(4, 10, "Material")])
        assert [c.annotator for c in store.all_corrections()] == ["alice", "bob"]


def test_a_postgres_server_that_is_down_says_what_to_do() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/dram"
    with pytest.raises(StoreUnavailableError, match="could not be reached.*Start the database server or fix DRAM_DB_URL"):
        open_store(url)


# ---------------------------------------------------------------- claims: one annotator per listing


def _queued(store, count: int) -> list[int]:
    """`count` predicted listings; the first is the least certain (its score nearest tau_r = 0.5)."""
    ids = [store.add_listing(f"{TEXT} #{i}") for i in range(count)]
    for rank, listing in enumerate(ids):
        store.add_prediction(listing, None, [], {"Color": 0.5 + 0.04 * (rank + 1)}, 0.5)
    return ids


def test_claims_hand_each_listing_to_one_annotator_and_a_reload_keeps_it(store) -> None:
    first, second, third = _queued(store, 3)
    assert store.claim_next("alice", 0.5).listing_id == first
    assert store.claim_next("bob", 0.5).listing_id == second  # alice's is not offered
    assert store.claim_next("alice", 0.5).listing_id == first  # a reload gives her the same one back
    assert store.claims() == {first: "alice", second: "bob"}
    assert [i.listing_id for i in store.review_queue(0.5, unclaimed=True)] == [third]
    with pytest.raises(CorrectionError, match="annotator name"):
        store.claim_next("  ", 0.5)


def test_a_save_on_another_annotators_claim_is_refused_and_saves_nothing(store) -> None:
    first, _ = _queued(store, 2)
    store.claim_next("alice", 0.5)
    with pytest.raises(ClaimError, match="being reviewed by alice.*not saved"):
        store.save_correction(first, "bob", [Span(0, 3, "Color")])
    assert store.all_corrections() == []
    store.save_correction(first, "alice", [Span(0, 3, "Color")])
    assert store.claims() == {}  # the save ends the claim
    assert store.claim_next("bob", 0.5).listing_id != first  # and a reviewed listing is not handed out again


def test_an_expired_claim_returns_the_listing_to_the_queue(store) -> None:
    first, _ = _queued(store, 2)
    ttl = timedelta(seconds=3)  # long enough that a loaded CI machine reaches bob's claim before it lapses
    claimed = time.monotonic()
    store.claim_next("alice", 0.5, ttl=ttl)
    assert store.claim_next("bob", 0.5).listing_id != first
    time.sleep(max(0.0, ttl.total_seconds() + 0.2 - (time.monotonic() - claimed)))
    assert store.claim_next("carol", 0.5).listing_id == first
    store.save_correction(first, "carol", [])
    # alice comes back late: the listing is reviewed, her correction is still saved (never lost), as a newer one
    store.save_correction(first, "alice", [Span(0, 3, "Color")])
    assert [c.annotator for c in store.corrections_for(first)] == ["carol", "alice"]


def _claim_and_die(url: str) -> None:
    import os

    with open_store(url) as store:
        store.claim_next("crashed", 0.5, ttl=timedelta(seconds=1))
    os._exit(3)  # the app process is gone without saving


def test_a_crashed_annotators_claim_is_released_when_it_expires(any_url: str) -> None:
    with open_store(any_url) as store:
        first, _ = _queued(store, 2)
    process = multiprocessing.get_context("spawn").Process(target=_claim_and_die, args=(any_url,))
    process.start()
    process.join(timeout=60)
    assert process.exitcode == 3
    with open_store(any_url) as store:
        assert store.claims() == {first: "crashed"}
        bobs = store.claim_next("bob", 0.5).listing_id
        assert bobs != first
        assert store.release_claim(bobs, "bob")  # bob moves on; else a reload would give him his own back
        time.sleep(1.1)
        assert store.claim_next("bob", 0.5).listing_id == first


def _annotate(url: str, annotator: str, saves: int, out: "multiprocessing.Queue") -> None:
    claimed = []
    with open_store(url) as store:
        for _ in range(saves):
            item = store.claim_next(annotator, 0.5)
            if item is None:
                break
            claimed.append(item.listing_id)
            store.save_correction(item.listing_id, annotator, [Span(0, 3, "Color")], prediction_id=item.prediction_id)
    out.put((annotator, claimed))


def test_annotator_processes_working_at_once_never_share_a_listing(any_url: str) -> None:
    """One annotator per listing, or two different ones for a double-reviewed listing (the default share,
    in force once the second annotator's first save makes the store a team)."""
    workers, saves = 4, 8
    with open_store(any_url) as store:
        _queued(store, workers * saves)
    double = DoubleReview()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = [context.Process(target=_annotate, args=(any_url, f"annotator-{w}", saves, out)) for w in range(workers)]
    for process in processes:
        process.start()
    claimed = dict(out.get(timeout=180) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    handed = [listing for listings in claimed.values() for listing in listings]
    assert len(handed) == workers * saves and all(len(set(mine)) == len(mine) for mine in claimed.values())
    assert all(n == 1 or (n == 2 and double.chosen(listing)) for listing, n in Counter(handed).items())
    with open_store(any_url) as store:
        corrections = store.all_corrections()
    assert sorted(c.listing_id for c in corrections) == sorted(handed)  # each saved once, none lost
    assert all(c.listing_id in claimed[c.annotator] for c in corrections)


def test_a_version_is_found_by_its_folder_however_the_path_is_written(store, tmp_path: Path, monkeypatch) -> None:
    """Versions are stored under their resolved folder (one query per request); one registered under
    another spelling of the same folder, a relative path or a symlink, is still the same version."""
    folder = tmp_path / "models" / "v1"
    folder.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    version = store.register_model_version("v1", "models/v1", {})
    assert store.list_model_versions()[-1].checkpoint_path == str(folder.resolve())
    (tmp_path / "link").symlink_to(folder)
    assert store.version_for_checkpoint(tmp_path / "link", {}).id == version
    assert store.version_for_checkpoint(folder, {}).id == version
    assert len(store.list_model_versions()) == 1
