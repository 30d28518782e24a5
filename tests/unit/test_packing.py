from __future__ import annotations

import pytest

from catalog_sync.logic.packing import OversizedChange, decode_body, pack_messages, unpack_message
from catalog_sync.models.changes import Change, ChangeKind, IndexAction


def change(i: int, text_size: int = 400) -> Change:
    return Change(
        product_id=f"p{i}",
        kind=ChangeKind.TEXT_CHANGED,
        action=IndexAction.UPSERT,
        priority=i % 3 == 0,
        fields_changed=("description",),
        version=7,
        text=f"product {i} " + "lorem ipsum dolor " * (text_size // 18),
        metadata={"price": i + 0.5, "tags": ["a", "b"]},
        text_hash="ab" * 16,
        metadata_hash="cd" * 16,
        field_hashes={"title": "0011223344556677"},
        fingerprint=bytes(range(16)),
    )


@pytest.mark.parametrize("compress", [True, False])
def test_messages_stay_within_the_limit_and_round_trip(compress: bool):
    changes = [change(i) for i in range(3000)]
    messages = list(pack_messages(changes, run_id="r1", lane="n", max_bytes=256 * 1024, compress=compress))
    assert all(len(m.body.encode()) <= 256 * 1024 for m in messages)
    assert sum(m.changes for m in messages) == 3000
    back = [c for m in messages for c in unpack_message(m.body)]
    assert back == changes  # in order, every field intact (bytes, floats, tuples)
    # Packed tightly: every message but the last is at least half full.
    assert all(len(m.body.encode()) > 128 * 1024 for m in messages[:-1])
    if compress:
        assert len(messages) <= 3  # ~1.4 MB of JSON, compressed, in 256 KB messages


def test_message_ids_are_deterministic():
    changes = [change(i) for i in range(500)]
    first = list(pack_messages(changes, run_id="r9", lane="p", max_bytes=64 * 1024))
    again = list(pack_messages(changes, run_id="r9", lane="p", max_bytes=64 * 1024))
    assert [m.message_id for m in first] == [m.message_id for m in again]
    assert [m.body for m in first] == [m.body for m in again]
    assert first[0].message_id == "r9-p-000001"


def test_an_oversized_change_goes_by_claim_check():
    big = change(1, text_size=400_000)
    store: dict[str, bytes] = {}

    def claim(oversized: OversizedChange) -> dict[str, str]:
        key = f"claims/{oversized.change.product_id}.json"
        store[key] = oversized.payload
        return {"key": key}

    messages = list(pack_messages([change(0), big, change(2)], run_id="r", lane="n", max_bytes=16 * 1024, claim=claim))
    assert list(store) == ["claims/p1.json"]
    back = [c for m in messages for c in unpack_message(m.body, resolve_claim=lambda ref: store[ref["key"]])]
    assert back == [change(0), big, change(2)]
    with pytest.raises(ValueError, match="does not fit"):
        list(pack_messages([big], run_id="r", lane="n", max_bytes=16 * 1024))


def test_unknown_formats_are_refused():
    with pytest.raises(ValueError, match="unknown change message format"):
        decode_body('{"format": 99, "changes": []}')


def test_bounded_batches_respect_count_and_bytes():
    from catalog_sync.logic.packing import bounded_batches

    sizes = [400, 400, 400, 100, 100, 100, 100, 900]
    batches = list(bounded_batches(sizes, size_of=lambda size: size, max_items=3, max_bytes=1000))
    assert batches == [[400, 400], [400, 100, 100], [100, 100], [900]]
    with pytest.raises(ValueError, match="exceeds"):
        list(bounded_batches([1001], size_of=lambda size: size, max_items=3, max_bytes=1000))
