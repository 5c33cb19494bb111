"""Double review on a real SQLite file and a real PostgreSQL server: which listings two annotators
see, how their verdicts settle a listing or send it to a third, what trains, and their agreement."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import event, select

from dram.data.spans import Span
from review.queue import look_note
from review.training_data import corrections_as_listings
from store import Store, open_store
from store import queue as store_queue
from store.agreement import ALL_ATTRIBUTES, AgreementRow, agreement_rows
from store.double_review import DoubleReview, double_review_states, resolve
from store.models import ListingRow
from store.records import QueueCounts

TEXT = "Red cotton shirt, size M"
RED, COTTON, SIZE = Span(0, 3, "colour"), Span(4, 10, "material"), Span(23, 24, "size")


@pytest.fixture
def store(any_url: str) -> Iterator[Store]:
    """Every listing reviewed twice, so each test's listings are double ones."""
    with open_store(any_url, double_review_share=1.0) as opened:
        yield opened


def trained(store: Store, tmp_path: Path) -> dict[str, list[Span]]:
    return {listing.id: listing.spans for listing in corrections_as_listings(store)}


def test_the_share_picks_the_same_listings_every_time_near_the_share_in_python_and_sql(any_url: str) -> None:
    tenth = DoubleReview(0.1)
    chosen = [i for i in range(1, 10_001) if tenth.chosen(i)]
    assert chosen == [i for i in range(1, 10_001) if DoubleReview(0.1).chosen(i)]
    assert 995 <= len(chosen) <= 1005
    assert all(90 <= sum(tenth.chosen(i) for i in range(start, start + 1000)) <= 110 for start in range(1, 9001, 1000))
    assert set(chosen) <= {i for i in range(1, 10_001) if DoubleReview(0.2).chosen(i)}  # raising keeps them
    assert not any(DoubleReview(0.0).chosen(i) for i in range(1, 10_001))
    with open_store(any_url, double_review_share=0.1) as store:
        ids = [store.add_listing(f"listing {i}") for i in range(200)]
        with store.db.transaction(write=False) as session:
            in_sql = set(session.scalars(select(ListingRow.id).where(tenth.chosen_sql(ListingRow.id))))
    assert in_sql == {i for i in ids if tenth.chosen(i)} and 15 <= len(in_sql) <= 25


def test_the_share_comes_from_open_store_else_the_environment(any_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRAM_DOUBLE_REVIEW_SHARE", "0.25")
    with open_store(any_url) as store:
        assert store.double_review == DoubleReview(0.25)
    with open_store(any_url, double_review_share=0) as store:
        assert store.double_review.share == 0
    monkeypatch.delenv("DRAM_DOUBLE_REVIEW_SHARE")
    assert DoubleReview.from_env() == DoubleReview(0.1)
    with pytest.raises(ValueError, match="between 0 and 1"):
        DoubleReview(1.5)


def test_a_double_listing_goes_to_a_second_annotator_never_back_to_the_first(store: Store, tmp_path: Path) -> None:
    listing = store.add_listing(TEXT)
    assert store.claim_next("alice", 0.5).listing_id == listing
    store.save_correction(listing, "alice", [RED])
    assert store.claim_next("alice", 0.5) is None
    assert [item.listing_id for item in store.review_queue(0.5)] == [listing]
    assert store.progress() == QueueCounts(saved=0, skipped=0, waiting=1) and trained(store, tmp_path) == {}
    assert store.claim_next("bob", 0.5).listing_id == listing
    store.save_correction(listing, "bob", [], status="skipped")  # a skip is no verdict
    assert store.progress() == QueueCounts(saved=0, skipped=1, waiting=0) and trained(store, tmp_path) == {}
    assert store.claim_next("alice", 0.5) is None
    assert store.claim_next("bob", 0.5).listing_id == listing


def test_two_annotators_who_agree_settle_the_listing_and_it_trains(store: Store, tmp_path: Path) -> None:
    listing, other = store.add_listing(TEXT), store.add_listing("Blue jeans")
    store.save_correction(listing, "alice", [RED, COTTON])
    store.save_correction(listing, "bob", [COTTON, RED], status="accepted")
    assert [item.listing_id for item in store.review_queue(0.5)] == [other]
    assert store.claim_next("carol", 0.5).listing_id == other
    assert store.progress() == QueueCounts(saved=1, skipped=0, waiting=1)
    assert trained(store, tmp_path) == {f"listing-{listing}": [RED, COTTON]}


def test_a_dispute_goes_to_a_third_annotator_and_only_the_thirds_version_trains(store: Store, tmp_path: Path) -> None:
    listing = store.add_listing(TEXT)
    store.save_correction(listing, "alice", [RED])
    store.save_correction(listing, "bob", [RED, COTTON])
    assert store.claim_next("alice", 0.5) is None and store.claim_next("bob", 0.5) is None
    assert store.progress() == QueueCounts(saved=0, skipped=0, waiting=1) and trained(store, tmp_path) == {}
    assert store.claim_next("carol", 0.5).listing_id == listing
    store.save_correction(listing, "carol", [RED, SIZE])
    assert store.review_queue(0.5) == [] and store.progress() == QueueCounts(saved=1, skipped=0, waiting=0)
    assert trained(store, tmp_path) == {f"listing-{listing}": [RED, SIZE]}
    store.save_correction(listing, "alice", [COTTON])  # made last, but the pair still disagrees: carol's stands
    assert trained(store, tmp_path) == {f"listing-{listing}": [RED, SIZE]}


def test_the_annotate_tab_can_say_which_look_a_listing_gets(store: Store, any_url: str) -> None:
    listing = store.add_listing(TEXT)
    assert look_note(store, listing).endswith("yours is the first look.")
    store.save_correction(listing, "alice", [RED])
    assert look_note(store, listing).endswith("yours is the second look.") and "alice" not in look_note(store, listing)
    store.save_correction(listing, "bob", [COTTON])
    assert look_note(store, listing).startswith("Third look")
    store.save_correction(listing, "carol", [RED])
    assert look_note(store, listing) == ""
    with open_store(any_url, double_review_share=0) as single:
        assert look_note(single, listing) == "" and single.double_review_state(listing) is None


def test_listings_outside_the_share_are_reviewed_once(any_url: str, tmp_path: Path) -> None:
    with open_store(any_url, double_review_share=0.1) as store:
        ids = [store.add_listing(f"Red shirt number {i}") for i in range(6)]
        single = next(i for i in ids if not store.double_review.chosen(i))
        double = next(i for i in ids if store.double_review.chosen(i))
        for listing in (single, double):
            store.save_correction(listing, "alice", [RED])
        assert {single, double} & {item.listing_id for item in store.review_queue(0.5)} == {double}
        assert store.progress() == QueueCounts(saved=1, skipped=0, waiting=5)
        assert list(trained(store, tmp_path)) == [f"listing-{single}"]


def test_the_agreement_table_gives_span_f1_and_the_counts_behind_it(store: Store) -> None:
    first, second, third, lone = (store.add_listing(TEXT) for _ in range(4))
    store.save_correction(first, "alice", [RED, COTTON])
    store.save_correction(first, "bob", [RED, COTTON])
    store.save_correction(second, "alice", [RED, SIZE])
    store.save_correction(second, "bob", [Span(0, 10, "colour"), SIZE])
    store.save_correction(second, "carol", [RED])  # the third look is not part of the agreement
    store.save_correction(third, "bob", [])
    store.save_correction(third, "carol", [COTTON])
    store.save_correction(lone, "alice", [RED])  # one verdict: nothing to compare yet
    assert store.agreement() == [
        AgreementRow("colour", listings=2, spans=4, agreed_spans=1, f1=0.5),
        AgreementRow("material", listings=2, spans=3, agreed_spans=1, f1=2 / 3),
        AgreementRow("size", listings=1, spans=2, agreed_spans=1, f1=1.0),
        AgreementRow(ALL_ATTRIBUTES, listings=3, spans=9, agreed_spans=3, f1=2 / 3),
    ]


def test_agreement_rows_compare_spans_by_characters_and_attribute() -> None:
    assert agreement_rows([]) == []
    assert agreement_rows([([], [])]) == [AgreementRow(ALL_ATTRIBUTES, 1, 0, 0, None)]
    (colour, total) = agreement_rows([([RED], [Span(0, 3, "colour", "Red", 0.4)]), ([RED], [])])
    assert colour == AgreementRow("colour", 2, 3, 1, 2 / 3) and total.listings == 2
    assert colour.line() == "colour: F1 66.7% (3 spans, 2 listings)"
    assert agreement_rows([([RED], [Span(0, 3, "brand")])])[0] == AgreementRow("brand", 1, 1, 0, 0.0)


def test_resolve_reads_each_annotators_standing_verdict() -> None:
    red, cotton = [RED.to_dict()], [COTTON.to_dict()]
    assert resolve([("alice", "corrected", red), ("alice", "corrected", cotton)]).pair[0].spans == {COTTON}
    skipped = resolve([("alice", "skipped", []), ("bob", "corrected", red), ("carol", "accepted", red)])
    assert [v.annotator for v in skipped.pair] == ["bob", "carol"] and skipped.agreed
    withdrawn = resolve([("alice", "corrected", red), ("alice", "withdrawn", []), ("bob", "corrected", cotton)])
    assert [v.annotator for v in withdrawn.pair] == ["bob"] and withdrawn.trains is None
    disputed = resolve([("alice", "corrected", red), ("bob", "corrected", cotton), ("carol", "corrected", red),
                        ("dave", "corrected", []), ("carol", "corrected", cotton)])
    assert disputed.trains is not None and disputed.trains.annotator == "carol" and disputed.trains.spans == {COTTON}
    assert disputed.reviewers == {"alice", "bob", "carol"}


def test_the_default_share_waits_for_a_team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone annotator's listings are reviewed once and all train; a second annotator starts double review."""
    monkeypatch.delenv("DRAM_DOUBLE_REVIEW_SHARE", raising=False)
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        listings = [store.add_listing(f"{TEXT} {i}") for i in range(40)]
        chosen = [i for i in listings if DoubleReview().chosen(i)]
        assert chosen, "some of 40 listings fall in the default tenth"
        for listing in listings:
            store.save_correction(listing, "alice", [RED])
        assert store.double_review.share == 0 and store.progress() == QueueCounts(saved=40, skipped=0, waiting=0)
        assert len(trained(store, tmp_path)) == 40
        other = store.add_listing("Blue jeans")
        store.save_correction(other, "bob", [])
        assert store.double_review == DoubleReview(0.1)  # a team now: the tenth wait for their second look
        assert {item.listing_id for item in store.review_queue(0.5)} == set(chosen)
        assert store.claim_next("alice", 0.5) is None and store.claim_next("bob", 0.5).listing_id in chosen


def test_a_claim_asks_once_whether_there_is_a_team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a lone annotator works, the team check (a read of the annotators with verdicts) runs once per
    claim, not again for each listing the claim looks at."""
    monkeypatch.delenv("DRAM_DOUBLE_REVIEW_SHARE", raising=False)
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}") as store:
        listings = [store.add_listing(f"{TEXT} {i}") for i in range(5)]
        store.save_correction(listings[0], "alice", [RED])
        checks: list[str] = []
        event.listen(store.db.engine, "before_cursor_execute", lambda _conn, _cursor, sql, *_: checks.append(sql)
                     if "distinct" in sql.lower() and "corrections.annotator" in sql else None)
        claimed = store.claim_next("alice", 0.5)
        assert claimed is not None and claimed.listing_id == listings[1] and len(checks) == 1
        assert store.double_review.share == 0  # still no team: alice alone saved


def test_the_queue_reads_the_states_of_the_double_listings_near_its_top(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short queue or a claim reads the verdicts of the double listings near the top, not of all of them."""
    read: list[int] = []

    def spy(session: Any, settings: DoubleReview, listing_ids: Any = None) -> Any:
        read.extend(listing_ids if listing_ids is not None else [-1])  # -1: all of them
        return double_review_states(session, settings, listing_ids)

    monkeypatch.setattr(store_queue, "double_review_states", spy)
    with open_store(f"sqlite:///{tmp_path / 'store.sqlite'}", double_review_share=1.0) as store:
        listings = [store.add_listing(f"{TEXT} {i}") for i in range(150)]
        for listing in listings[1:]:  # settled by two agreeing verdicts: out of the queue
            store.save_correction(listing, "alice", [RED])
            store.save_correction(listing, "bob", [RED])
        assert [item.listing_id for item in store.review_queue(0.5, limit=1)] == [listings[0]]
        assert len(read) <= store_queue._FIRST_STATES and -1 not in read
        read.clear()
        assert store.claim_next("carol", 0.5).listing_id == listings[0]
        assert len(read) <= store_queue._FIRST_STATES + 1 and -1 not in read  # + 1: the check under the lock
        read.clear()
        assert store.progress() == QueueCounts(saved=149, skipped=0, waiting=1) and read == [-1]
