"""Consumers' progress on a dispatched run, on DynamoDB: counters on the run's item, and a marker per message
counted (MSG#<catalog>#<run> / <message id>) so that a message delivered twice is counted once."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from catalog_sync.adapters.aws.dynamodb_state import keys
from catalog_sync.adapters.aws.dynamodb_state.runs import APPLIED_PREFIX, RunState
from catalog_sync.adapters.aws.dynamodb_state.table import attribute_values, conditional_check_failed

# Long enough to outlive a message: 14 days in a queue at most, then again as long in its dead-letter queue.
MESSAGE_MARKER_TTL_SECONDS = 30 * 86_400
_COUNTER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class RunProgress(RunState):
    def record_progress(
        self, run_id: str, handled: int, applied: Mapping[str, int] | None = None, *, message_id: str | None = None
    ) -> bool:
        """Count changes of a dispatched run that consumers handled, and add up what they did (`applied`, e.g.
        embedded, cache_hits, upserted: `runs()` reports them as applied_<name>); the last one marks the run
        succeeded.

        With a `message_id`, a marker item and the counters are written in one transaction, on condition that
        the marker is new: a message delivered twice (SQS delivers at least once; a redrive sends it again) is
        counted once, so the run completes when every message was handled, not before.
        """
        expression = "ADD changes_done :n"
        names: dict[str, str] = {}
        values: dict[str, Any] = {":n": handled}
        for i, (name, value) in enumerate(sorted((applied or {}).items())):
            if not _COUNTER_NAME.match(name):
                raise ValueError(f"not a counter name: {name!r}")
            names[f"#a{i}"] = f"{APPLIED_PREFIX}{name}"
            values[f":a{i}"] = int(value)
            expression += f", #a{i} :a{i}"
        # Only a run that was begun: a message naming no run (forged, or its run's item expired) adds no row.
        kwargs: dict[str, Any] = {
            "ConditionExpression": "attribute_exists(run_json)",
            "ExpressionAttributeNames": names,
        }
        if not names:
            del kwargs["ExpressionAttributeNames"]
        values = attribute_values(values)
        if message_id is not None:
            return self._record_message_progress(run_id, message_id, expression, values, kwargs)
        try:
            response = self._dynamodb.update_item(
                TableName=self.table,
                Key=self._run_key(run_id),
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                **kwargs,
            )
        except Exception as exc:
            if conditional_check_failed(exc):
                return False
            raise
        finally:
            self.requests["write"] += 1
        return self._complete_if_done(run_id, response["Attributes"])

    def _record_message_progress(
        self, run_id: str, message_id: str, expression: str, values: dict[str, Any], extra: dict[str, Any]
    ) -> bool:
        marker = {
            **keys.message_marker_key(self.catalog, run_id, message_id),
            **attribute_values({"expires_at": int(time.time()) + MESSAGE_MARKER_TTL_SECONDS}),
        }
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": marker,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._run_key(run_id),
                            "UpdateExpression": expression,
                            "ExpressionAttributeValues": values,
                            **extra,
                        }
                    },
                ]
            )
        except Exception as exc:
            reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons") or []
            failed = [reason.get("Code") == "ConditionalCheckFailed" for reason in reasons]
            if len(failed) != 2 or not any(failed):
                raise
            if failed[1]:
                return False  # no such run
            # Counted before. That delivery may have stopped before completing the run: the check below is safe
            # to repeat (the completion is a conditional write).
        finally:
            self.requests["write"] += 1
        item = self._dynamodb.get_item(TableName=self.table, Key=self._run_key(run_id), ConsistentRead=True)["Item"]
        self.requests["get"] += 1
        return self._complete_if_done(run_id, item)
