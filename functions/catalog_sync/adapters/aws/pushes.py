"""Pushed changes (the webhook's POST /catalogs/{catalog}/changes), on AWS: validated with the catalog's config from
the bucket (catalog_sync.logic.push), written to `<pushes_prefix><catalog>/<request>.jsonl` and handed to the diff
function as a push (catalog_sync.adapters.aws.triggers): the diff does the rest exactly as for a catalog drop."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from catalog_sync.adapters.aws.catalog_configs import CatalogConfigs
from catalog_sync.adapters.aws.diff_invoker import MAX_EVENT_PAYLOAD_BYTES, Invoker, PayloadTooLarge
from catalog_sync.adapters.aws.triggers import parse_trigger
from catalog_sync.logic.push import PreparedPush, prepare_push


def push_key(pushes_prefix: str, catalog: str, request_id: str, suffix: str) -> str:
    """The object a push is written to; the request id is made safe for a key (base64 may hold "/" and "+")."""
    safe = re.sub(r"[^A-Za-z0-9_.=-]", "-", request_id.replace("/", "_").replace("+", "-"))
    return f"{pushes_prefix}{catalog}/{safe}{suffix}"


class ChangePusher:
    """Validates a push, writes its object and queues the diff of exactly the products it names."""

    def __init__(
        self,
        *,
        s3: Any,
        configs: CatalogConfigs,
        invoker: Callable[[], Invoker],
        bucket: str,
        catalogs_prefix: str,
        pushes_prefix: str,
    ) -> None:
        self._s3 = s3
        self.configs = configs
        self._invoker = invoker
        self.bucket = bucket
        self.catalogs_prefix = catalogs_prefix
        self.pushes_prefix = pushes_prefix

    def push(
        self, catalog: str, upserts: Sequence[dict[str, Any]], deletes: Sequence[str], *, request_id: str
    ) -> tuple[PreparedPush, str]:
        """The push as written and its key. Raises CatalogNotFound, PushRejected (nothing written) or
        PayloadTooLarge."""
        config = self.configs.get(catalog)
        prepared = prepare_push(config, upserts, deletes)
        key = push_key(self.pushes_prefix, catalog, request_id, prepared.suffix)
        payload = {"catalog": catalog, "key": key, "ids": prepared.ids, "mode": "incremental"}
        # What the diff function will make of it (a BadTrigger here is a bug, not the caller's).
        parse_trigger(payload, prefix=self.catalogs_prefix, pushes_prefix=self.pushes_prefix)
        size = len(orjson.dumps(payload))
        if size > MAX_EVENT_PAYLOAD_BYTES:  # checked before anything is written
            raise PayloadTooLarge(f"{size} bytes, at most {MAX_EVENT_PAYLOAD_BYTES}")
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=prepared.body, ContentType=prepared.content_type)
        self._invoker().invoke(payload)
        return prepared, key
