"""The names the functions publish metrics under, shared with the alarms and the dashboard that read them."""

from __future__ import annotations

NAMESPACE = "CatalogSync"
SERVICE = "catalog-sync"

# Published by the functions with the dimension {"service": SERVICE}.
MESSAGES_PROCESSED = "MessagesProcessed"
MESSAGES_FAILED = "MessagesFailed"
GUARD_TRIPS = "GuardTrips"
PRODUCTS_ADDED = "ProductsAdded"
PRODUCTS_MODIFIED = "ProductsModified"
PRODUCTS_METADATA_ONLY = "ProductsMetadataOnly"
PRODUCTS_DELETED = "ProductsDeleted"
INVALID_RECORDS = "InvalidRecords"
VECTORS_UPSERTED = "VectorsUpserted"
METADATA_UPDATED = "MetadataUpdated"
VECTORS_DELETED = "VectorsDeleted"
TEXTS_EMBEDDED = "TextsEmbedded"
EMBEDDING_CACHE_HITS = "EmbeddingCacheHits"
STALE_CHANGES_SKIPPED = "StaleChangesSkipped"
# Products the index refused for their content: left pending with the reason, their message succeeded.
PRODUCTS_REJECTED = "ProductsRejected"
REJECTED_EVENTS = "RejectedEvents"
BAD_INPUT = "BadInput"
# The webhook's: a request it failed on (500) or refused for its signature (401).
WEBHOOK_ERRORS = "WebhookErrors"
UNAUTHENTICATED_REQUESTS = "UnauthenticatedRequests"

# Published with the dimensions {"service": SERVICE, "catalog": <name>}: a run of that catalog completed (all
# its changes handled). The staleness alarms watch it per catalog.
RUNS_SUCCEEDED = "RunsSucceeded"
CATALOG_DIMENSION = "catalog"

# Published by the health function, per catalog (same dimensions as RUNS_SUCCEEDED): the catalog's health score,
# 0-100 (catalog_sync.logic.health).
HEALTH_SCORE = "HealthScore"
