"""Which of two catalog drops is the newer one: the order a run's claim on "the newest catalog object" follows.

A run that reads a catalog drop claims it as the newest object read; a drop older than the claimed one is not
synced (it would undo the newer catalog). S3 stamps LastModified to the second, so it cannot order two drops made
within the same second. The order, from the first rule that decides:

1. The same object (same key; same version id and sequencer wherever both claims know one; the same second where
   a version id is missing) is neither newer nor older: claiming it again is allowed (a retried event, or a
   schedule re-reading the object an event claimed).
2. Two writes of the same key whose claims both carry S3's `sequencer` (S3 events do): the greater sequencer is
   the later write. S3 documents this order for the events of one key, comparing the hexadecimal strings after
   left-padding the shorter with zeros, which is comparing them as numbers. It decides within one second too, and
   over LastModified (a multipart upload is stamped when it began, sequenced when it completed).
3. Otherwise (different keys, or a claim without a sequencer: a scheduled or direct sync lists the newest object
   and has none), the later LastModified second wins; within the same second, the greater key wins, by code point
   (the order S3 lists keys in). Keys whose names sort in time order (`2026-11-22T08-00-00.jsonl`) order drops of
   one second as they were made; the scheduled sync picks the newest object by the same rule.
4. The same key, within one second, without two sequencers to compare, at different versions: not ordered; the
   later claim wins (the next scheduled sync, which reads the key's current version, settles it).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field


class DropClaim(BaseModel):
    """A catalog object a run reads, as its claim to be the newest one."""

    model_config = ConfigDict(frozen=True)

    key: str = Field(min_length=1)
    modified: float  # S3's LastModified, epoch seconds
    version_id: str | None = None
    # S3's sequencer of the write (from its event); None for a run that found the object by listing.
    sequencer: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]+$", max_length=128)

    @property
    def second(self) -> int:
        return math.floor(self.modified)


def _sequence(claim: DropClaim) -> int | None:
    return int(claim.sequencer, 16) if claim.sequencer else None


def same_object(a: DropClaim, b: DropClaim) -> bool:
    """Whether two claims are of one object (rule 1): nothing that both know tells them apart."""
    if a.key != b.key:
        return False
    if a.version_id and b.version_id and a.version_id != b.version_id:
        return False
    sequences = _sequence(a), _sequence(b)
    if None not in sequences and sequences[0] != sequences[1]:
        return False
    # Without both version ids, only the timestamp tells two writes of one key apart.
    return bool(a.version_id and b.version_id) or a.second == b.second


def compare(a: DropClaim, b: DropClaim) -> int:
    """1 if `a` is the newer drop, -1 if `b` is, 0 if they are the same object or cannot be ordered (rule 4)."""
    if same_object(a, b):
        return 0
    if a.key == b.key:
        first, second = _sequence(a), _sequence(b)
        if first is not None and second is not None and first != second:
            return 1 if first > second else -1
    if a.second != b.second:
        return 1 if a.second > b.second else -1
    if a.key != b.key:
        return 1 if a.key > b.key else -1
    return 0


def may_claim(claim: DropClaim, stored: DropClaim | None) -> bool:
    """Whether a run may read `claim`'s object, the claimed newest one being `stored`: unless `stored` is newer."""
    return stored is None or compare(stored, claim) <= 0


def claimed(claim: DropClaim, stored: DropClaim | None) -> DropClaim:
    """What to record once `claim` is allowed: a re-claim of the same object keeps the sequencer already known
    (a schedule's claim has none, and the next stale event must still be refused by it)."""
    if stored is not None and claim.sequencer is None and same_object(claim, stored):
        return claim.model_copy(update={"sequencer": stored.sequencer})
    return claim


def superseded(mine: DropClaim, stored: DropClaim | None) -> bool:
    """Whether a run reading `mine` has been overtaken: another object was claimed since (only a newer object, or
    one that cannot be ordered against it, is ever claimed after it)."""
    return stored is not None and not same_object(mine, stored)


def newest_listed(objects: list[tuple[str, float]]) -> str | None:
    """The newest of listed (key, LastModified) objects by rule 3: the one a scheduled sync reads."""
    if not objects:
        return None
    return max(objects, key=lambda entry: (math.floor(entry[1]), entry[0]))[0]
