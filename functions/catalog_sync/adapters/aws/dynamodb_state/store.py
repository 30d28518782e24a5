"""A catalog's state on DynamoDB: per-product desired and committed versions, refused changes, the newest
catalog object read, runs and their consumers' progress, in one table (the layout: keys.py)."""

from __future__ import annotations

from catalog_sync.adapters.aws.dynamodb_state.claims import SourceClaims
from catalog_sync.adapters.aws.dynamodb_state.products import ProductState
from catalog_sync.adapters.aws.dynamodb_state.progress import RunProgress
from catalog_sync.adapters.aws.dynamodb_state.rejections import RejectionState


class DynamoStateStore(ProductState, RejectionState, SourceClaims, RunProgress):
    """One catalog's state (catalog_sync.ports.StateStore): each part of it in its own module, on one table."""
