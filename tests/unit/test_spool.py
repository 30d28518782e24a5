from catalog_sync.logic.spool import Spool
from catalog_sync.models.changes import Change, ChangeKind, IndexAction


def change(i: int) -> Change:
    return Change(
        product_id=f"p{i}",
        kind=ChangeKind.ADDED,
        action=IndexAction.UPSERT,
        text=f"text {i} caf\u00e9",
        metadata={"price": i + 0.5, "tags": ["a", "b"]},
        field_hashes={"title": "00ff"},
        fingerprint=bytes(range(i % 200, i % 200 + 16)),
        version=3,
    )


def test_small_spools_stay_in_memory():
    spool = Spool(Change, memory_limit=10)
    for i in range(10):
        spool.append(change(i))
    assert len(spool) == 10 and spool.spilled == 0
    assert [c.product_id for c in spool] == [f"p{i}" for i in range(10)]


def test_spilled_items_come_back_in_order_and_intact():
    spool = Spool(Change, memory_limit=3)
    originals = [change(i) for i in range(50)]
    for item in originals:
        spool.append(item)
    assert len(spool) == 50 and spool.spilled == 47
    assert list(spool) == originals  # bytes, floats, unicode and nested values survive the round trip
    assert list(spool) == originals  # and can be read again
    spool.close()


def test_empty_spool_is_falsy():
    assert not Spool(Change)


def test_retain_keeps_the_accepted_items_in_order_in_memory_and_on_disk():
    spool = Spool(Change, memory_limit=4)
    for i in range(30):
        spool.append(change(i))
    assert spool.spilled == 26
    spool.retain(lambda item: int(item.product_id[1:]) % 3 != 0)
    kept = [f"p{i}" for i in range(30) if i % 3 != 0]
    assert [c.product_id for c in spool] == kept
    assert len(spool) == len(kept) and spool.spilled == len(kept) - 4
    spool.append(change(99))
    assert [c.product_id for c in spool][-2:] == ["p29", "p99"]
    spool.close()
