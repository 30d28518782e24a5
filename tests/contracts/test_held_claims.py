"""A drop the deletion guard holds is as if it had not come: its claim on the newest object is withdrawn (on every
state store: SQLite, and DynamoDB under moto).

Found by the convergence suite with the guard on: a held drop stayed the newest object, so a repair re-read it
(and the guard then held the repair, leaving its products pending), and older drops were superseded by it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from catalog_sync.logic.drops import DropClaim
from catalog_sync.ports import DropClaims

T = 1_795_000_000.0


def drop(number: int, second: float = T) -> DropClaim:
    return DropClaim(key=f"catalogs/shop/v{number}.jsonl", modified=second + 5 * number, version_id=f"x{number}")


def claim(store: DropClaims, claim: DropClaim) -> bool:
    return store.claim_source(
        modified=claim.modified, key=claim.key, version_id=claim.version_id, sequencer=claim.sequencer
    )


@pytest.fixture
def store(make_store: Callable[[], Any]) -> DropClaims:
    store: DropClaims = make_store()
    return store


def test_a_held_drop_gives_the_newest_claim_back(store: DropClaims):
    assert claim(store, drop(1)) and claim(store, drop(3))
    store.withdraw_claim(drop(3))
    assert store.newest_claim() == drop(1)
    # An older drop than the held one is no longer superseded by it.
    assert claim(store, drop(2))
    assert store.newest_claim() == drop(2)


def test_a_retried_held_drop_gives_back_the_claim_it_replaced_not_itself(store: DropClaims):
    assert claim(store, drop(1)) and claim(store, drop(2))
    assert claim(store, drop(2))  # its event again
    store.withdraw_claim(drop(2))
    assert store.newest_claim() == drop(1)


def test_the_first_drop_held_leaves_no_claim(store: DropClaims):
    assert claim(store, drop(2))
    store.withdraw_claim(drop(2))
    assert store.newest_claim() is None
    assert claim(store, drop(1))


def test_a_newer_claim_is_kept_and_no_longer_falls_back_to_the_held_drop(store: DropClaims):
    assert claim(store, drop(1)) and claim(store, drop(2)) and claim(store, drop(3))
    store.withdraw_claim(drop(2))  # held, but drop 3 was claimed meanwhile
    assert store.newest_claim() == drop(3)
    store.withdraw_claim(drop(3))  # held too: nothing to fall back to that was not held
    assert store.newest_claim() is None
    # Withdrawing a claim that is not there changes nothing.
    assert claim(store, drop(4))
    store.withdraw_claim(drop(1))
    assert store.newest_claim() == drop(4)
