"""The options (and the catalog argument) that several commands share, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catalog_sync.models.config import EmbedderKind

CatalogArgument = Annotated[
    Path, typer.Argument(help="Catalog file (.json, .jsonl, .csv, .tsv, .txt, .xml, optionally .gz).")
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Catalog config (TOML or YAML). Default: $CATALOG_SYNC_CONFIG or ./catalog-sync.toml",
    ),
]
EmbedderOption = Annotated[
    EmbedderKind | None, typer.Option("--embedder", "-e", help="Embedder; default from the config (minilm).")
]
# The read-only commands use the embedder the index was built with (recorded in the state): naming another is an
# error, not a way to change it.
IndexEmbedderOption = Annotated[
    EmbedderKind | None,
    typer.Option(
        "--embedder",
        "-e",
        help="Not needed after a complete sync: the embedder the index was built with is used; any other is refused.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
StateOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="Root of the local state. Default: $CATALOG_SYNC_STATE_DIR or ./.catalog-sync"),
]
WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0.0,
        help="When another sync or watch holds the catalog's state: wait up to this many seconds for it "
        "(default: fail at once, exit 4).",
    ),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Pass the deletion guard.")]
ChangesShownOption = Annotated[int, typer.Option(min=0, help="Changes listed per group.")]

# The operator's view (status and runs): the local state, or a deployed stack.
StackOption = Annotated[
    str | None,
    typer.Option("--stack", help="A deployed stack's name: read its state table instead of the local state."),
]
RegionOption = Annotated[
    str | None, typer.Option("--region", help="The stack's AWS region (default: the environment's).")
]
CatalogOption = Annotated[
    str | None, typer.Option("--catalog", help="With --stack: only this catalog (default: every catalog of the stack).")
]
ShardsOption = Annotated[
    int | None,
    typer.Option("--state-shards", min=1, help="With --stack: shards of the state (default: as the table records)."),
]
