"""The `catalog-sync` command line, on the embedded default (`status` and `runs` also read a deployed stack).

Exit codes: 0 ok, 1 failed, 2 held back by the deletion guard, 3 bad input (catalog, configuration or usage),
4 another writer holds the catalog's state, 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

# The embedder factory lives here, where the commands look it up at each use: a test can replace it.
from catalog_sync.bootstrap.registry import build_embedder
from catalog_sync.cli.application import app, main
from catalog_sync.cli.commands.config import config_app
from catalog_sync.cli.commands.index import export, query
from catalog_sync.cli.commands.redrive import redrive
from catalog_sync.cli.commands.status import runs_command, status
from catalog_sync.cli.commands.sync import monitor, sync, watch
from catalog_sync.cli.commands.validate import validate
from catalog_sync.cli.errors import ExitCode

# In the order `--help` lists them.
COMMANDS = {
    "monitor": monitor,
    "sync": sync,
    "watch": watch,
    "status": status,
    "runs": runs_command,
    "query": query,
    "export": export,
    "validate": validate,
    "redrive": redrive,
}
for name, function in COMMANDS.items():
    app.command(name)(function)
app.add_typer(config_app)

__all__ = ["COMMANDS", "ExitCode", "app", "build_embedder", "main"]
