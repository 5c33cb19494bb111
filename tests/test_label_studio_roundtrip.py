"""The Label Studio round trip loses nothing and lets nothing malformed in: a REAL server and a real store.

Each test works in its own project of the session's one server (tests/conftest.py). Faults the
server cannot be asked for (an answer lost after the work was done, a connection dropped
mid-response) come from the forwarding proxy in tests/fault_proxy.py.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest
from label_studio_sdk import LabelStudio

from dram.data.spans import Span
from review.training_data import corrections_as_listings
from store import Store, StoreBusyError
from store import open_store
from store.label_studio import LabelStudioError, export_to_label_studio, import_from_label_studio, importer
from tests.fault_proxy import FaultProxy
from tests.label_studio_server import TOKEN, Server
from tests.round_trip_audit import Tally, tally

pytestmark = pytest.mark.label_studio

ATTRIBUTES = ["colour", "material", "size"]
TEXTS = [
    "Red cotton shirt, size M",
    "Blue denim jeans 32",
    "Black leather belt",
    "White silk dress, size S",
    "Green wool jacket",
    "Navy cotton socks",
]


def region(text: str, start: int, end: int, label: str) -> dict[str, Any]:
    """A text-label region as Label Studio's editor saves it (ASCII texts: offsets are the same)."""
    return {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}}


@pytest.fixture
def client(label_studio: Server) -> LabelStudio:
    return LabelStudio(base_url=label_studio.url, api_key=label_studio.token)


@pytest.fixture
def project(tmp_path: Path) -> str:
    """A project of its own per test: the server is shared by the whole session."""
    return f"DRAM {tmp_path.name}"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """One annotator per listing: the audit expects each listing's newest correction to be what trains,
    which double review holds back until a second annotator agrees (its own test below)."""
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}", double_review_share=0) as opened:
        yield opened


def export(store: Store, url: str, project: str):
    """Export through `url`: the server itself, or the fault proxy in front of it."""
    return export_to_label_studio(store, url, TOKEN, project, ATTRIBUTES)


def import_(store: Store, url: str, project: str):
    return import_from_label_studio(store, url, TOKEN, project, attributes=ATTRIBUTES)


def task_ids(client: LabelStudio, project_id: int) -> dict[int, int]:
    """listing id -> task id, read from Label Studio."""
    return {t.data["dram_listing_id"]: t.id for t in client.tasks.list(project=project_id, fields="task_only")}


def corrected_and_exported(store: Store, client: LabelStudio, url: str, project: str,
                           corrections: list[tuple[str, list[Span]]]) -> tuple[list[int], dict[int, int]]:
    """Each text added as a listing and corrected by alice, then exported: the listings and their tasks."""
    listings = [store.add_listing(text) for text, _ in corrections]
    for listing, (_, spans) in zip(listings, corrections):
        store.save_correction(listing, "alice", spans)
    return listings, task_ids(client, export(store, url, project).project_id)


def predicted_and_corrected(store: Store) -> tuple[int, int, Any]:
    """A shirt with a prediction and alice's correction, and jeans with neither: (shirt, jeans, correction)."""
    shirt, jeans = store.add_listing(TEXTS[0]), store.add_listing(TEXTS[1])
    store.add_prediction(shirt, None, [{"start": 0, "end": 3, "attribute": "colour", "confidence": 0.9}],
                         {"colour": 0.9}, 0.5)
    return shirt, jeans, store.save_correction(shirt, "alice", [Span(4, 10, "material")])


def test_junk_annotations_are_refused_in_plain_words_and_nothing_is_stored(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    listings = [store.add_listing(text) for text in TEXTS]
    report = export(store, label_studio.url, project)
    tasks = task_ids(client, report.project_id)
    create = lambda i, result: client.annotations.create(tasks[listings[i]], result=result).id  # noqa: E731
    made = {
        "choices": create(0, [{"from_name": "label", "to_name": "text", "type": "choices",
                               "value": {"choices": ["looks fine"]}}]),
        "fabric": create(1, [region(TEXTS[1], 5, 10, "fabric")]),
        "no offsets": create(2, [{"from_name": "label", "to_name": "text", "type": "labels",
                                  "value": {"text": "Black", "labels": ["colour"]}}]),
        "text offset": create(3, [{"from_name": "label", "to_name": "text", "type": "labels",
                                   "value": {"start": "abc", "end": 5, "labels": ["colour"]}}]),
        "outside": create(4, [{"from_name": "label", "to_name": "text", "type": "labels",
                               "value": {"start": 0, "end": 99, "labels": ["colour"]}}]),
        "no values": create(5, []),
    }

    imported = import_(store, label_studio.url, project)

    assert imported.added == 1
    reasons = {name: next((r for r in imported.rejected if f"annotation {made[name]}" in r), None) for name in made}
    assert reasons.pop("no values") is None
    for name, reason in reasons.items():
        listing_index = list(made).index(name)
        assert reason is not None, f"{name} was not refused: {imported.rejected}"
        assert f"task {tasks[listings[listing_index]]}" in reason.lower(), reason
    assert "choices" in reasons["choices"] and "text label" in reasons["choices"]
    assert "'fabric'" in reasons["fabric"] and "add_attribute" in reasons["fabric"]
    assert "start and end" in reasons["no offsets"] and "redraw" in reasons["no offsets"]
    assert "invalid literal" not in reasons["text offset"] and "'abc'" in reasons["text offset"]
    assert "not inside the text" in reasons["outside"]
    # Only the annotator's "this listing has no values" was stored; the rest stay in the review queue.
    (correction,) = store.all_corrections()
    assert (correction.listing_id, correction.spans, correction.status) == (listings[5], [], "corrected")
    assert {item.listing_id for item in store.review_queue(0.5)} == set(listings[:5])

    # Adding the attribute to the store lets the annotation in on the next import; the rest stay refused.
    store.add_attribute("fabric", added_by="alice")
    again = import_(store, label_studio.url, project)
    assert (again.added, again.unchanged, len(again.rejected)) == (1, 1, 4)
    assert store.corrections_for(listings[1])[0].spans == [Span(5, 10, "fabric")]


def only_annotation(client: LabelStudio, task_id: int) -> Any:
    (annotation,) = client.annotations.list(task_id)
    return annotation


def test_an_edit_in_label_studio_to_an_exported_correction_comes_back(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    (shirt,), tasks = corrected_and_exported(store, client, label_studio.url, project, [(TEXTS[0], [Span(4, 10, "material")])])
    annotation = only_annotation(client, tasks[shirt])
    # An annotator adds the colour in Label Studio.
    client.annotations.update(annotation.id, result=[*annotation.result, region(TEXTS[0], 0, 3, "colour")])

    imported = import_(store, label_studio.url, project)

    assert (imported.added, imported.updated, imported.from_store, imported.rejected) == (0, 1, 0, [])
    (listing,) = corrections_as_listings(store)
    assert listing.spans == [Span(0, 3, "colour"), Span(4, 10, "material")]
    # alice's saved version is kept beside the edit.
    assert [c.spans for c in store.corrections_for(shirt)] == [
        [Span(4, 10, "material")],
        [Span(0, 3, "colour"), Span(4, 10, "material")],
    ]
    before = store.all_corrections()
    again = import_(store, label_studio.url, project)
    assert (again.added, again.updated) == (0, 0) and store.all_corrections() == before


def test_an_annotation_deleted_in_label_studio_withdraws_the_correction_and_requeues_the_listing(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    (shirt, jeans), tasks = corrected_and_exported(store, client, label_studio.url, project,
                                                   [(TEXTS[0], [Span(4, 10, "material")]), (TEXTS[1], [Span(0, 4, "colour")])])
    client.annotations.delete(only_annotation(client, tasks[shirt]).id)  # an annotator deletes it in Label Studio

    imported = import_(store, label_studio.url, project)

    assert len(imported.withdrawn) == 1 and "1 deleted in Label Studio (withdrawn here)" in imported.lines()[0]
    assert f"listing {shirt}'s correction is withdrawn" in imported.lines()[1]
    assert [c.status for c in store.corrections_for(shirt)] == ["corrected", "withdrawn"]  # the old one kept
    assert [i.listing_id for i in store.review_queue(0.5)] == [shirt]  # back in the queue
    assert [listing.text for listing in corrections_as_listings(store)] == [TEXTS[1]]  # and out of training
    assert store.progress() == (1, 0, 1)
    # From now on both sides agree: the export re-creates nothing, the import withdraws nothing twice.
    again = export(store, label_studio.url, project)
    assert (again.tasks_created, again.annotations_created) == (0, 0)
    assert client.annotations.list(tasks[shirt]) == []
    assert import_(store, label_studio.url, project).withdrawn == []
    # Reviewed again in the app, the listing goes out as a new annotation.
    store.save_correction(shirt, "bob", [Span(0, 3, "colour")])
    assert export(store, label_studio.url, project).annotations_created == 1
    assert import_(store, label_studio.url, project).withdrawn == []


def test_a_deletion_in_label_studio_does_not_undo_a_newer_correction_made_in_the_app(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    (shirt,), tasks = corrected_and_exported(store, client, label_studio.url, project, [(TEXTS[0], [Span(4, 10, "material")])])
    store.save_correction(shirt, "bob", [Span(0, 3, "colour")])  # changed in the app, not exported yet
    client.annotations.delete(only_annotation(client, tasks[shirt]).id)

    imported = import_(store, label_studio.url, project)

    assert "has a newer correction made in the app" in imported.withdrawn[0]
    assert [c.status for c in store.corrections_for(shirt)] == ["corrected", "corrected"]
    assert [listing.spans for listing in corrections_as_listings(store)] == [[Span(0, 3, "colour")]]


def test_a_correction_changed_on_both_sides_keeps_both_and_the_later_one_is_current(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    (app_first, ls_first), tasks = corrected_and_exported(
        store, client, label_studio.url, project, [(TEXTS[0], [Span(4, 10, "material")]), (TEXTS[3], [Span(6, 10, "material")])])
    in_ls = {listing: only_annotation(client, tasks[listing]) for listing in (app_first, ls_first)}

    # app_first: changed in the app, then (later) in Label Studio.
    store.save_correction(app_first, "bob", [Span(0, 3, "colour")])
    client.annotations.update(in_ls[app_first].id, result=[region(TEXTS[0], 18, 22, "size")])
    # ls_first: changed in Label Studio, then (later) in the app.
    client.annotations.update(in_ls[ls_first].id, result=[region(TEXTS[3], 0, 5, "colour")])
    store.save_correction(ls_first, "bob", [Span(0, 5, "colour"), Span(6, 10, "material")])

    imported = import_(store, label_studio.url, project)

    assert imported.updated == 2 and len(imported.conflicts) == 2
    for listing in (app_first, ls_first):
        (conflict,) = [c for c in imported.conflicts if f"annotation {in_ls[listing].id}" in c]
        assert f"task {tasks[listing]}" in conflict.lower() and "both kept" in conflict
    current = {item.text: item.spans for item in corrections_as_listings(store)}
    assert current[TEXTS[0]] == [Span(18, 22, "size")]  # Label Studio's edit came last
    assert current[TEXTS[3]] == [Span(0, 5, "colour"), Span(6, 10, "material")]  # the app's came last
    assert len(store.corrections_for(app_first)) == len(store.corrections_for(ls_first)) == 3  # nothing lost


def test_an_answer_lost_after_the_server_stored_a_create_duplicates_nothing(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    shirt, jeans, correction = predicted_and_corrected(store)
    with FaultProxy(label_studio.url) as proxy:
        # The server stores the task (and then the annotation) but the client is told HTTP 500.
        proxy.inject("POST", r"^/api/tasks/?(\?|$)", "error_after_forward")
        proxy.inject("POST", r"^/api/tasks/\d+/annotations", "error_after_forward")
        first = export(store, proxy.url, project)  # the task's answer is lost
        second = export(store, proxy.url, project)  # the task is found; the annotation's answer is lost
        third = export(store, proxy.url, project)  # the annotation is found
        assert proxy.pending() == 0, "both faults were injected"

    assert first.failures and "export again" in " ".join(first.failures)
    tasks = list(client.tasks.list(project=first.project_id, fields="all"))
    assert sorted(t.data["dram_listing_id"] for t in tasks) == [shirt, jeans]
    (annotation,) = [a for t in tasks for a in t.annotations]
    # The task whose answer was lost is found on the next export, and gets its prediction once.
    assert [len(t.predictions) for t in tasks if t.data["dram_listing_id"] == shirt] == [1]
    assert store.unexported_corrections() == [] and store.corrections_for(shirt)[0].ls_annotation_id == annotation["id"]
    assert (second.annotations_created + third.annotations_created, third.tasks_created) == (0, 0)
    assert import_(store, label_studio.url, project).from_store == 1 and [c.id for c in store.all_corrections()] == [
        correction
    ]


def test_a_prediction_the_server_never_got_is_repaired_by_the_next_export(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    shirt, jeans = store.add_listing(TEXTS[0]), store.add_listing(TEXTS[1])
    for listing in (shirt, jeans):
        store.add_prediction(listing, None, [{"start": 0, "end": 3, "attribute": "colour", "confidence": 0.9}],
                             {"colour": 0.9}, 0.5)
    with FaultProxy(label_studio.url) as proxy:
        # Label Studio goes down after storing the shirt's task, before its prediction arrives.
        proxy.inject("POST", r"^/api/predictions", "down_before_forward")
        first = export(store, proxy.url, project)
        assert proxy.pending() == 0
    assert (first.tasks_created, first.predictions_created) == (2, 1)
    assert "the next export sends it" in " ".join(first.failures)

    second = export(store, label_studio.url, project)  # compares what Label Studio holds, sends what it lacks
    assert (second.tasks_created, second.predictions_created, second.failures) == (0, 1, [])
    held = lambda: {t.data["dram_listing_id"]: len(t.predictions)  # noqa: E731
                    for t in client.tasks.list(project=first.project_id, fields="all")}
    assert held() == {shirt: 1, jeans: 1}
    assert export(store, label_studio.url, project).predictions_created == 0  # both sides equal: nothing more
    # A newer model's prediction for a listing already in Label Studio goes out too, once.
    store.add_prediction(jeans, None, [{"start": 5, "end": 10, "attribute": "material", "confidence": 0.7}],
                         {"material": 0.7}, 0.5)
    assert export(store, label_studio.url, project).predictions_created == 1
    assert held() == {shirt: 1, jeans: 2}


def test_a_task_deleted_in_label_studio_is_sent_again_with_its_correction(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    shirt, _, _ = predicted_and_corrected(store)
    first = export(store, label_studio.url, project)
    client.tasks.delete(task_ids(client, first.project_id)[shirt])  # someone deletes the task in Label Studio

    again = export(store, label_studio.url, project)

    assert (again.tasks_repaired, again.tasks_created, again.predictions_created, again.annotations_created) == (1, 1, 1, 1)
    assert "1 tasks gone from Label Studio sent again" in again.lines()[0]
    task = task_ids(client, first.project_id)[shirt]
    assert [r["value"]["labels"] for r in only_annotation(client, task).result] == [["material"]]
    assert export(store, label_studio.url, project).tasks_created == 0  # both sides equal now
    imported = import_(store, label_studio.url, project)
    assert (imported.withdrawn, imported.from_store, imported.added) == ([], 1, 0)
    assert len(store.corrections_for(shirt)) == 1


def test_exported_corrections_carry_the_annotators_name(
    label_studio: Server, client: LabelStudio, store: Store, project: str
) -> None:
    shirt, socks = store.add_listing(TEXTS[0]), store.add_listing(TEXTS[5])
    carol = client.users.create(username="carol", email="carol@dram.test", password="carol-password-123")
    store.save_correction(shirt, "Zoë Martin", [Span(4, 10, "material")])  # known to the app only
    store.save_correction(socks, "Carol@dram.test", [Span(0, 4, "colour")])  # a Label Studio user
    report = export(store, label_studio.url, project)
    tasks = task_ids(client, report.project_id)

    zoe = client.users.get(only_annotation(client, tasks[shirt]).completed_by)
    assert f"{zoe.first_name} {zoe.last_name}".strip() == "Zoë Martin"
    assert only_annotation(client, tasks[socks]).completed_by == carol.id
    # The same annotator is one Label Studio user however often the export runs.
    store.save_correction(socks, "Zoë Martin", [Span(0, 4, "colour"), Span(5, 11, "material")])
    export(store, label_studio.url, project)
    assert zoe.id in {a.completed_by for a in client.annotations.list(tasks[socks])}
    assert [u.id for u in client.users.list() if "Zoë" in f"{u.first_name} {u.last_name}"] == [zoe.id]
    # An annotator's edit in Label Studio comes back under the editor's name.
    annotation = only_annotation(client, tasks[shirt])
    client.annotations.update(annotation.id, result=[region(TEXTS[0], 0, 3, "colour")])
    import_(store, label_studio.url, project)
    assert store.corrections_for(shirt)[-1].annotator == "admin@dram.test"


def test_connections_dropped_mid_export_and_mid_import_lose_and_duplicate_nothing(
    label_studio: Server, client: LabelStudio, store: Store, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    listings = [store.add_listing(text) for text in TEXTS]
    for listing, text in zip(listings, TEXTS):
        store.save_correction(listing, "alice", [Span(0, text.index(" "), "colour")])
    monkeypatch.setattr(importer, "IMPORT_PAGE_SIZE", 2)  # so the import can break between pages
    with FaultProxy(label_studio.url) as proxy:
        # The third annotation is stored by the server, but the connection drops while it answers.
        proxy.inject("POST", r"^/api/tasks/\d+/annotations", "drop_mid_response", after=2)
        with pytest.raises(LabelStudioError, match="broke during the export, while trying to export corrections"):
            export(store, proxy.url, project)
        report = export(store, proxy.url, project)
        assert (report.annotations_created, report.annotations_recovered) == (3, 1)

        tasks = task_ids(client, report.project_id)
        expected = {}
        for listing, text in zip(listings, TEXTS):  # every annotation gets its material in Label Studio
            annotation = only_annotation(client, tasks[listing])
            word = text.split()[1].strip(",")
            spans = [*annotation.result, region(text, text.index(word), text.index(word) + len(word), "material")]
            client.annotations.update(annotation.id, result=spans)
            expected[listing] = [{"start": r["value"]["start"], "end": r["value"]["end"],
                                  "attribute": r["value"]["labels"][0]} for r in spans]
        # The second page of tasks breaks off half-way, after the first page was imported (three times:
        # the client retries a read twice, which is harmless for reads).
        proxy.inject("GET", r"^/api/tasks/?\?.*\bpage=2\b", "drop_mid_response", times=3)
        with pytest.raises(LabelStudioError, match="broke during the import, while trying to read annotations.*run the import again"):
            import_(store, proxy.url, project)
        imported = import_(store, proxy.url, project)
        assert proxy.pending() == 0
    assert (imported.updated, imported.unchanged, imported.rejected) == (4, 2, [])  # page 1 came in before the break
    assert tally(store, client, report.project_id, expected, ATTRIBUTES) == Tally(lost=0, duplicated=0, junk=0)


def test_a_locked_store_stops_export_and_import_and_the_next_run_loses_and_duplicates_nothing(
    label_studio: Server, client: LabelStudio, tmp_path: Path, project: str
) -> None:
    path = tmp_path / "locked.sqlite"
    with open_store(f"sqlite:///{path}", busy_timeout_s=0.05, retries=1, backoff_s=0.01) as store:
        listings = [store.add_listing(text) for text in TEXTS[:3]]
        for listing, text in zip(listings, TEXTS):
            store.save_correction(listing, "alice", [Span(0, text.index(" "), "colour")])
        report = export(store, label_studio.url, project)
        tasks = task_ids(client, report.project_id)
        expected = {}
        for listing, text in zip(listings, TEXTS):
            annotation = only_annotation(client, tasks[listing])
            client.annotations.update(annotation.id, result=[region(text, 0, text.index(" "), "size")])
            expected[listing] = [{"start": 0, "end": text.index(" "), "attribute": "size"}]
        store.save_correction(listings[0], "bob", [Span(0, 3, "colour"), Span(4, 10, "material")])  # later: current
        expected[listings[0]] = [{"start": 0, "end": 3, "attribute": "colour"}, {"start": 4, "end": 10, "attribute": "material"}]

        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock throughout
        try:
            with pytest.raises(StoreBusyError, match="try again"):
                import_(store, label_studio.url, project)
            with pytest.raises(StoreBusyError, match="try again"):
                export(store, label_studio.url, project)
        finally:
            holder.rollback()
            holder.close()

        imported = import_(store, label_studio.url, project)
        exported = export(store, label_studio.url, project)
        assert (imported.updated, imported.rejected, exported.failures) == (3, [], [])
        assert len(imported.conflicts) == 1  # listing 0 changed on both sides
        assert tally(store, client, report.project_id, expected, ATTRIBUTES) == Tally(lost=0, duplicated=0, junk=0)


def test_an_edit_in_label_studio_reaches_the_served_model_and_junk_does_not(
    label_studio: Server, client: LabelStudio, store: Store, project: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Edit in Label Studio -> import -> store -> fine-tune -> the version the app serves (tiny model)."""
    from dram.checkpoint import save_checkpoint
    from tests.test_finetune import data, settings
    from tests.tiny_model import tiny_model, write_text_encoder
    from training import finetune as finetune_module

    texts = ["red cotton shirt for men", "blue denim jeans", "black leather belt", "green wool jacket"]
    listings = [store.add_listing(text) for text in texts]
    for listing, text in zip(listings, texts):
        store.save_correction(listing, "alice", [Span(0, text.index(" "), "colour")])
    report = export(store, label_studio.url, project)
    tasks = task_ids(client, report.project_id)
    expected = {}
    for listing, text in zip(listings, texts):  # the annotators add the material in Label Studio
        annotation = only_annotation(client, tasks[listing])
        word = text.split()[1]
        client.annotations.update(annotation.id, result=[
            *annotation.result, region(text, text.index(word), text.index(word) + len(word), "material")])
        expected[text] = [Span(0, text.index(" "), "colour"), Span(text.index(word), text.index(word) + len(word),
                                                                    "material")]
    client.annotations.create(tasks[listings[0]], result=[  # and someone leaves junk on one task
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["fine"]}}])
    imported = import_(store, label_studio.url, project)
    assert (imported.updated, len(imported.rejected)) == (4, 1)

    trained_on: list = []
    real_fetch = finetune_module.fetch_corrections

    def fetch_and_keep(*args: Any) -> list:
        """The real fetch; the test keeps what the fine-tune was given."""
        trained_on.extend(real_fetch(*args))
        return trained_on

    monkeypatch.setattr(finetune_module, "fetch_corrections", fetch_and_keep)
    model, tokenizer = tiny_model(write_text_encoder(tmp_path / "bert"), "text-only")
    source = save_checkpoint(model, tokenizer, tmp_path / "models" / "v0", {})
    result = finetune_module.finetune(source, store, tmp_path / "models" / "v1", data("replay"), data("heldout"),
                                      settings(tmp_path), finetune_module.FinetuneSettings(0.25, 4, promote=True), progress=False)

    assert {item.text: item.spans for item in trained_on} == expected  # every edit, nothing else
    assert result.metrics["finetune"]["corrections"] == 4 and result.metrics["finetune"]["dropped_spans"] == {}
    assert store.active_model_version().id == result.version_id  # what the app serves now


def test_the_export_carries_the_agreement_between_annotators_into_the_projects_description(
    label_studio: Server, client: LabelStudio, tmp_path: Path, project: str
) -> None:
    with open_store(f"sqlite:///{tmp_path / 'double.sqlite'}", double_review_share=1.0) as store:
        shirt, jeans = store.add_listing(TEXTS[0]), store.add_listing(TEXTS[1])
        store.save_correction(shirt, "alice", [Span(0, 3, "colour"), Span(4, 10, "material")])
        store.save_correction(shirt, "bob", [Span(0, 3, "colour")])
        first = export(store, label_studio.url, project)
        agreement = first.lines()[-1]
        assert agreement.startswith("Agreement between annotators") and "colour: F1 100.0% (2 spans, 1 listings)" in agreement
        assert "material: F1 0.0% (1 spans, 1 listings)" in agreement
        assert client.projects.get(first.project_id).description == agreement  # what Label Studio users see
        client.projects.update(first.project_id, description="Fashion listings, batch 3.")
        store.save_correction(jeans, "alice", [Span(0, 4, "colour")])
        store.save_correction(jeans, "carol", [Span(0, 4, "colour")])
        again = export(store, label_studio.url, project)
        description = client.projects.get(first.project_id).description
    assert "colour: F1 100.0% (4 spans, 2 listings)" in again.lines()[-1]
    assert description == f"Fashion listings, batch 3.\n\n{again.lines()[-1]}"  # the owner's text kept, ours replaced
