"""The deletion guard: a catalog that would wipe a large part of the index is held back."""

from __future__ import annotations

from pydantic import BaseModel

from catalog_sync.models.config import GuardSettings


class GuardDecision(BaseModel):
    held: bool
    reason: str | None = None
    delete_share: float = 0.0


def check_deletions(
    *, deletions: int, indexed: int, records: int, settings: GuardSettings, force: bool = False
) -> GuardDecision:
    """Hold a run back when it would delete too much, or when the catalog is empty."""
    share = deletions / indexed if indexed else 0.0
    if force:
        return GuardDecision(held=False, delete_share=share)
    if records == 0 and not settings.allow_empty_catalog:
        consequence = f"it would delete all {indexed:,} indexed products" if indexed else "there is nothing to index"
        return GuardDecision(
            held=True,
            delete_share=share,
            reason=(
                f"the catalog is empty: {consequence} (use --force, or set guard.allow_empty_catalog, if intended)"
            ),
        )
    if deletions and share > settings.max_delete_share:
        return GuardDecision(
            held=True,
            delete_share=share,
            reason=(
                f"the catalog would delete {deletions:,} of {indexed:,} indexed products ({share:.1%}), over the "
                f"guard's {settings.max_delete_share:.0%}; check the file (truncated? wrong prefix?) or use --force"
            ),
        )
    return GuardDecision(held=False, delete_share=share)
