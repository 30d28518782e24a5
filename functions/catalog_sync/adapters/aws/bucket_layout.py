"""Where things live in the catalog bucket, one prefix each: the defaults of the functions' settings, and what
the stack grants, expires and passes to the functions (infra/). Imports nothing, so that the stack can use it."""

from __future__ import annotations

# Written by the operator: a catalog's configuration (<prefix><catalog>.toml or .yaml) and its drops
# (<prefix><catalog>/<file>).
CONFIGS_PREFIX = "config/"
CATALOGS_PREFIX = "catalogs/"
# Products pushed through the webhook, read by the diff like a catalog restricted to the pushed ids.
PUSHES_PREFIX = "pushes/"
# Written by the diff: claim checks and dispatch archives (kept only while a run may need them), and the
# records it quarantined.
CLAIMS_PREFIX = "claims/"
RUNS_PREFIX = "runs/"
QUARANTINE_PREFIX = "quarantine/"
