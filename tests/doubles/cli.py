"""Driving the `catalog-sync` command line in tests: a command's JSON answer, and the local index's export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

from catalog_sync import cli
from catalog_sync.adapters.embedders.hashing import HashingEmbedder

runner = CliRunner()


class RecordingEmbedder(HashingEmbedder):
    """The hashing test embedder, remembering every text it embedded."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.texts.extend(texts)
        return super().embed(texts)


def invoke_json(config: Path, *args: str, state_dir: Path | None = None) -> tuple[int, Any]:
    """Run a command with --json: its exit code and its last JSON line ({} if it printed none). A traceback (an
    exception other than the exit) fails the test: every failure must be an answer."""
    state = [] if state_dir is None else ["--state-dir", str(state_dir)]
    result = runner.invoke(cli.app, [*args, "--config", str(config), *state, "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, orjson.loads(result.stdout.splitlines()[-1]) if result.stdout.strip() else {}


def export_rows(config: Path, state_dir: Path) -> dict[str, dict[str, Any]]:
    """The local index's entries by id, as `export` writes them (id, text hash, metadata)."""
    result = runner.invoke(cli.app, ["export", "--config", str(config), "--state-dir", str(state_dir)])
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in map(orjson.loads, result.stdout.splitlines())}
