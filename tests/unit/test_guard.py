from catalog_sync.logic.guard import check_deletions
from catalog_sync.models.config import GuardSettings


def test_small_deletion_passes():
    assert not check_deletions(deletions=10, indexed=100, records=90, settings=GuardSettings()).held


def test_large_deletion_is_held_with_a_reason():
    decision = check_deletions(deletions=95, indexed=100, records=5, settings=GuardSettings())
    assert decision.held
    assert "95 of 100" in decision.reason
    assert decision.delete_share == 0.95


def test_threshold_is_configurable_and_force_passes():
    settings = GuardSettings(max_delete_share=0.5)
    assert not check_deletions(deletions=40, indexed=100, records=60, settings=settings).held
    assert not check_deletions(deletions=95, indexed=100, records=5, settings=settings, force=True).held


def test_empty_catalog_is_held_even_with_an_empty_index():
    assert check_deletions(deletions=0, indexed=0, records=0, settings=GuardSettings()).held
    assert check_deletions(deletions=7, indexed=7, records=0, settings=GuardSettings()).held
    assert not check_deletions(deletions=0, indexed=0, records=0, settings=GuardSettings(allow_empty_catalog=True)).held
