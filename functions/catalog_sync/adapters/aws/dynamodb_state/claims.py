"""The claim on a catalog's newest object, on DynamoDB (M#<catalog> / source): which drop is newer is
catalog_sync.logic.drops; a claim is read, judged, then written only if nobody claimed meanwhile."""

from __future__ import annotations

from typing import Any

from catalog_sync.adapters.aws.dynamodb_state.table import StateTable, StateWriteError, attribute_values, decimal, plain
from catalog_sync.logic.drops import DropClaim, claimed, may_claim, same_object

# Claims of the newest catalog object are read, judged, then written if nobody claimed meanwhile: a few rounds.
_CLAIM_ATTEMPTS = 10
_KEEP = object()  # a part of the claim item a write leaves as it is


def _names(prefix: str) -> dict[str, str]:
    """The attributes of the claim recorded under `prefix` ("": the newest; "prior_": the one it replaced)."""
    return {
        "key": "source_key" if not prefix else f"{prefix}key",
        "modified": f"{prefix}modified",
        "version": f"{prefix or 'source_'}version",
        "sequencer": f"{prefix or 'source_'}sequencer",
    }


def _claim_of(item: dict[str, Any] | None, prefix: str = "") -> DropClaim | None:
    """The claim recorded in the item (read by `plain`; `prefix` "prior_": the one it replaced)."""
    names = _names(prefix)
    if item is None or names["key"] not in item:
        return None
    return DropClaim(
        key=item[names["key"]],
        modified=float(item[names["modified"]]),
        version_id=item.get(names["version"]),
        sequencer=item.get(names["sequencer"]),
    )


def _claim_attributes(claim: DropClaim | None, prefix: str) -> tuple[list[str], dict[str, Any], list[str]]:
    """SET clauses, their values and REMOVE names recording `claim` (None: no claim) under `prefix`."""
    names = _names(prefix)
    fields = {
        "key": claim.key if claim else None,
        "modified": decimal(claim.modified) if claim else None,
        "version": claim.version_id if claim and claim.version_id else None,
        "sequencer": claim.sequencer if claim and claim.sequencer else None,
    }
    sets, values, removes = [], {}, []
    for part, value in fields.items():
        if value is None:
            removes.append(names[part])
        else:
            placeholder = f":{prefix or 'c_'}{part}"
            sets.append(f"{names[part]} = {placeholder}")
            values[placeholder] = value
    return sets, values, removes


def _claim_write(claim: Any, read: dict[str, Any] | None, *, prior: Any = None) -> dict[str, Any]:
    """The update recording `claim` (None: no claim; _KEEP: as it is) and the claim it replaced, `prior` (kept to
    be put back if the guard holds the run of `claim`'s drop; None: none), conditional on the item being as
    `read` (`claims` counts its writes)."""
    values: dict[str, Any] = {":one": 1, ":zero": 0}
    sets = ["claims = if_not_exists(claims, :zero) + :one"]
    removes: list[str] = []
    for recorded, prefix in ((claim, ""), (prior, "prior_")):
        if recorded is _KEEP:
            continue
        more_sets, more_values, more_removes = _claim_attributes(recorded, prefix)
        sets += more_sets
        values |= more_values
        removes += more_removes
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    if read is None:
        condition = "attribute_not_exists(pk)"
    elif "claims" in read:
        condition = "claims = :read"
        values[":read"] = read["claims"]
    else:  # written before claims were counted
        condition = "attribute_not_exists(claims) AND modified = :read_m AND source_key = :read_k"
        values[":read_m"], values[":read_k"] = read["modified"], read["source_key"]
    return {
        "UpdateExpression": expression,
        "ConditionExpression": condition,
        "ExpressionAttributeValues": attribute_values(values),
    }


class SourceClaims(StateTable):
    def claim_source(self, *, modified: float, key: str, version_id: str | None, sequencer: str | None = None) -> bool:
        """Record that a run reads the catalog object `key` (at `version_id`, written with S3's `sequencer` when
        its event gave one), last modified at `modified` (epoch seconds), unless a run already read a newer one:
        False then, and this object must not be synced (an older drop's event arriving late, or retried, would
        otherwise undo a newer catalog). Which drop is newer: catalog_sync.logic.drops."""
        claim = DropClaim(key=key, modified=modified, version_id=version_id, sequencer=sequencer)
        for _ in range(_CLAIM_ATTEMPTS):
            item = self._source_item()
            stored = _claim_of(item)
            if not may_claim(claim, stored):
                return False
            # The claim replaced is kept, to be the newest again if the guard holds this drop's run; a re-claim of
            # the same object (a retry) keeps the one it had.
            prior = _KEEP if stored is not None and same_object(claim, stored) else stored
            # Judged against what was read, so written only if nobody claimed meanwhile (else judged again).
            if self._update(self._meta_key("source"), **_claim_write(claimed(claim, stored), item, prior=prior)):
                return True
        raise StateWriteError(f"could not claim {key!r}: other runs kept claiming the catalog's newest object")

    def withdraw_claim(self, claim: DropClaim) -> None:
        """The guard held the run of `claim`'s drop: the drop is as if it had not come. The claim it replaced is the
        newest again (no older drop is superseded by the held one, no repair re-reads it); if another drop was
        claimed since, that one no longer falls back to the held drop."""
        for _ in range(_CLAIM_ATTEMPTS):
            item = self._source_item()
            current, prior = _claim_of(item), _claim_of(item, "prior_")
            if current is not None and same_object(current, claim):
                update = _claim_write(prior, item)
            elif prior is not None and same_object(prior, claim):
                update = _claim_write(_KEEP, item)
            else:
                return
            if self._update(self._meta_key("source"), **update):
                return
        raise StateWriteError(f"could not withdraw the claim on {claim.key!r}: other runs kept claiming")

    def newest_source(self) -> tuple[float, str, str | None] | None:
        """(modified, key, version id) of the newest catalog object a run has read, if any."""
        claim = self.newest_claim()
        return None if claim is None else (claim.modified, claim.key, claim.version_id)

    def newest_claim(self) -> DropClaim | None:
        """The newest catalog object a run has read, with its sequencer when an S3 event gave it."""
        return _claim_of(self._source_item())

    def _source_item(self) -> dict[str, Any] | None:
        item = self._dynamodb.get_item(TableName=self.table, Key=self._meta_key("source"), ConsistentRead=True).get(
            "Item"
        )
        self.requests["get"] += 1
        return None if item is None else plain(item)
