"""Changes the index refused, with its reasons, on DynamoDB: one item per product, current while its version is
the product's desired, uncommitted one (checked when read)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from catalog_sync.adapters.aws.dynamodb_state import keys
from catalog_sync.adapters.aws.dynamodb_state.table import (
    StateTable,
    StateWriteError,
    attribute_values,
    conditional_check_failed,
    plain,
)
from catalog_sync.models.index import IndexRejection

# Older rejections expire.
REJECTION_TTL_SECONDS = 30 * 86_400
# Rejection items read per listing: status stays one small query, however many products were refused.
MAX_REJECTIONS_READ = 2_000


class RejectionState(StateTable):
    def record_rejections(self, rejections: Sequence[IndexRejection]) -> None:
        expires = int(time.time()) + REJECTION_TTL_SECONDS

        def put(rejection: IndexRejection) -> bool:
            at = (rejection.at or datetime.now(UTC)).isoformat()
            try:
                self._dynamodb.put_item(
                    TableName=self.table,
                    Item={
                        **keys.rejection_key(self.catalog, rejection.product_id),
                        **attribute_values(
                            {
                                "v": rejection.version,
                                "action": rejection.action,
                                "reason": rejection.reason,
                                "at": at,
                                "expires_at": expires,
                            }
                        ),
                    },
                    # A late consumer's rejection of an older version does not replace a newer one.
                    ConditionExpression="attribute_not_exists(v) OR v <= :v",
                    ExpressionAttributeValues=attribute_values({":v": rejection.version}),
                )
            except Exception as exc:
                if conditional_check_failed(exc):
                    return False
                raise StateWriteError(f"state write failed: {exc}") from exc
            self.requests["write"] += 1
            return True

        self._parallel(put, list(rejections))

    def rejections(self, limit: int = 1_000) -> list[IndexRejection]:
        items: list[dict[str, Any]] = []
        for page in self._query(keys.rejections_partition(self.catalog)):
            items.extend(plain(item) for item in page)
            if len(items) >= MAX_REJECTIONS_READ:
                break
        products = {
            product["sk"]: product
            for product in map(plain, self._batch_get([item["sk"] for item in items], "sk, dv, cv, #del"))
        }
        current = []
        for item in items:
            product = products.get(item["sk"])
            version = item["v"]
            if product is None or product["dv"] != version or product.get("cv") == version:
                continue  # committed since, changed again, or gone
            current.append(
                IndexRejection(
                    product_id=item["sk"],
                    version=int(version),
                    action=item["action"],
                    reason=item["reason"],
                    at=datetime.fromisoformat(item["at"]),
                )
            )
        current.sort(key=lambda r: r.product_id)
        current.sort(key=lambda r: r.at or datetime.min.replace(tzinfo=UTC), reverse=True)  # newest first
        return current[:limit]
