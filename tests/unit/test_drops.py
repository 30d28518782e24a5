"""The order of catalog drops (catalog_sync.logic.drops), rule by rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from catalog_sync.logic.drops import DropClaim, claimed, compare, may_claim, newest_listed, same_object, superseded

T = 1_795_000_000.0  # a whole second, as S3 stamps objects


def claim(
    key: str = "catalogs/shop/feed.jsonl", modified: float = T, version: str | None = None, seq: str | None = None
):
    return DropClaim(key=key, modified=modified, version_id=version, sequencer=seq)


def test_the_same_object_again_is_neither_newer_nor_older():
    event = claim(version="v1", seq="00617F08299329D189")
    assert same_object(event, event) and compare(event, event) == 0 and may_claim(event, event)
    scheduled = claim(version="v1")  # a schedule listed the object and found the version the event named
    assert same_object(event, scheduled) and may_claim(scheduled, event)
    # Without version ids (an unversioned bucket) two writes of one key are told apart by their second.
    assert same_object(claim(), claim(modified=T + 0.5))
    assert not same_object(claim(), claim(modified=T + 1))


def test_the_sequencer_orders_one_keys_writes_within_a_second():
    older, newer = claim(version="v1", seq="0A1B2C3D4E5F678901"), claim(version="v2", seq="0A1B2C3D4E5F678902")
    assert compare(newer, older) == 1 and compare(older, newer) == -1
    assert may_claim(newer, older) and not may_claim(older, newer)  # the older event, arriving second, is refused


def test_sequencers_compare_after_left_padding():
    # As strings "FF" > "0100"; padded to equal length, "00FF" < "0100".
    short, longer = claim(version="v1", seq="FF"), claim(version="v2", seq="0100")
    assert compare(longer, short) == 1
    assert compare(claim(version="v3", seq="1a"), claim(version="v4", seq="1B")) == -1  # hexadecimal, either case


def test_the_sequencer_decides_over_last_modified_for_one_key():
    # A multipart upload is stamped when it began, and may complete after a later single PUT of the same key.
    began_earlier = claim(modified=T - 5, version="v2", seq="0000000000000002")
    put_later = claim(modified=T, version="v1", seq="0000000000000001")
    assert compare(began_earlier, put_later) == 1


def test_different_keys_order_by_second_then_by_key_name():
    a, b = claim("catalogs/shop/a.jsonl", version="v1"), claim("catalogs/shop/b.jsonl", version="v2")
    assert compare(b, a) == 1 and compare(a, b) == -1  # same second: the greater key
    # The sequencer of another key does not order anything (S3 documents it per key).
    assert compare(claim("catalogs/shop/a.jsonl", seq="FFFF"), claim("catalogs/shop/b.jsonl", seq="0001")) == -1
    # A later second wins whatever the names.
    assert compare(claim("catalogs/shop/a.jsonl", modified=T + 1), b) == 1
    # Within a second, the fraction plays no part: S3 stamps whole seconds.
    assert compare(claim("catalogs/shop/a.jsonl", modified=T + 0.9), b) == -1


def test_a_claim_without_a_sequencer_falls_back_to_last_modified():
    event = claim(version="v2", seq="0000000000000002")
    assert compare(claim(modified=T + 1, version="v3"), event) == 1  # a schedule's newer object
    assert compare(claim(modified=T - 1, version="v1"), event) == -1  # a schedule that read an older version
    # The same key and second, a version the event does not name: cannot be ordered; the later claim wins.
    tie = claim(version="v9")
    assert compare(tie, event) == 0 and may_claim(tie, event) and may_claim(event, tie)


def test_a_reclaim_of_the_same_object_keeps_the_known_sequencer():
    event = claim(version="v2", seq="0000000000000002")
    assert claimed(claim(version="v2"), event) == event
    other = claim(version="v3")
    assert claimed(other, event) == other
    assert claimed(event, None) == event


def test_a_run_is_overtaken_once_another_object_is_claimed():
    mine = claim(version="v1", seq="01")
    assert not superseded(mine, None) and not superseded(mine, mine)
    assert not superseded(claim(version="v1"), mine)  # the event of the object a schedule is reading
    assert superseded(mine, claim(version="v2", seq="02"))
    assert superseded(mine, claim("catalogs/shop/z.jsonl"))


def test_the_newest_listed_object_follows_the_same_rule():
    assert newest_listed([]) is None
    listed = [("catalogs/shop/b.jsonl", T + 0.2), ("catalogs/shop/a.jsonl", T + 0.7), ("catalogs/shop/0.jsonl", T - 1)]
    assert newest_listed(listed) == "catalogs/shop/b.jsonl"


@pytest.mark.parametrize("sequencer", ["", "0x12", "12G4", "12 34"])
def test_a_sequencer_must_be_hexadecimal(sequencer: str):
    with pytest.raises(ValidationError):
        claim(seq=sequencer)
