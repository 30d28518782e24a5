"""The local index: `query` it, `export` its content."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from catalog_sync.adapters.local.lance_index import NoLocalIndex
from catalog_sync.cli import state
from catalog_sync.cli.application import command
from catalog_sync.cli.console import out, write_json
from catalog_sync.cli.errors import CommandError, ExitCode
from catalog_sync.cli.options import ConfigOption, IndexEmbedderOption, JsonOption, StateOption
from catalog_sync.cli.render_sync import print_embedder
from catalog_sync.models.config import CatalogConfig, FieldType


def _parse_filters(filters: list[str], settings: CatalogConfig) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    for item in filters:
        if "=" not in item:
            raise CommandError(f"--filter takes field=value, got {item!r}", ExitCode.BAD_INPUT)
        name, raw = (part.strip() for part in item.split("=", 1))
        if name != "id" and name not in settings.metadata:
            known = ", ".join(["id", *settings.metadata])
            raise CommandError(f"--filter {name}: not a metadata field of this catalog ({known})", ExitCode.BAD_INPUT)
        kind = settings.metadata.get(name)
        value: Any = raw
        try:
            if kind is FieldType.NUMBER:
                value = float(raw)
            elif kind is FieldType.INTEGER:
                value = int(raw)
            elif kind is FieldType.BOOLEAN:
                value = raw.lower() in ("1", "true", "yes")
        except ValueError as exc:
            raise CommandError(f"--filter {name}: {raw!r} is not a {kind}", ExitCode.BAD_INPUT) from exc
        parsed[name] = value
    return parsed


@command
def query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    config: ConfigOption = None,
    embedder: IndexEmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    k: Annotated[int, typer.Option("-k", min=1, max=10_000, help="How many results.")] = 5,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="field=value on metadata; repeatable.")] = None,
) -> ExitCode:
    """Semantic search on the local index, with the embedder it was built with (no --embedder needed)."""
    settings = state.load(config, None)
    filters_parsed = _parse_filters(filters or [], settings)
    with state.query_workspace(settings, state_dir, embedder) as workspace:
        vector = workspace.embedder.embed([text])[0]
        matches = workspace.index.query(vector, k, filters_parsed)
    if json_output:
        write_json([m.model_dump() for m in matches])
        return ExitCode.OK
    print_embedder(workspace.embedder)
    table = Table(title=f"Top {k} for {text!r}", title_justify="left")
    table.add_column("score", justify="right")
    table.add_column("id")
    table.add_column("title / text")
    table.add_column("metadata")
    for match in matches:
        title = str(match.metadata.get("title") or match.text.splitlines()[0])[:60]
        shown = [*settings.priority_fields, "brand"]
        meta = ", ".join(f"{key}={match.metadata[key]}" for key in shown if key in match.metadata)
        table.add_row(f"{match.score or 0:.3f}", match.id, title, meta)
    out.print(table)
    return ExitCode.OK


@command
def export(
    config: ConfigOption = None,
    embedder: IndexEmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> ExitCode:
    """Write the index's content (id, metadata, text hash) as JSON Lines, for audits and backups (no embedder
    needed)."""
    settings = state.load(config, None)
    count = 0
    with state.reader(settings, state_dir, embedder) as local:
        try:
            index = local.index
        except NoLocalIndex as exc:
            raise CommandError(
                f"nothing synced yet: catalog {settings.name!r} has no index ({exc})", ExitCode.FAILED
            ) from exc
        target = output.open("wb") if output else sys.stdout.buffer
        try:
            for entry in index.export():
                target.write(orjson.dumps({"id": entry.id, "text_hash": entry.text_hash, "metadata": entry.metadata}))
                target.write(b"\n")
                count += 1
        finally:
            if output:
                target.close()
    if output:
        message = {"exported": count, "output": str(output)}
        if json_output:
            write_json(message)
        else:
            out.print(f"exported {count:,} entries to {output}")
    return ExitCode.OK
