"""`validate`: a catalog's invalid records, without syncing."""

from __future__ import annotations

from itertools import islice
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from catalog_sync.cli import state
from catalog_sync.cli.application import command
from catalog_sync.cli.console import out, progress_bars, write_json
from catalog_sync.cli.errors import ExitCode
from catalog_sync.cli.options import CatalogArgument, ConfigOption, EmbedderOption, JsonOption
from catalog_sync.cli.render_checks import config_check_json, print_config_problems
from catalog_sync.formats.catalog import open_catalog
from catalog_sync.logic.diff import CatalogDiff
from catalog_sync.logic.snapshot import EmptySnapshot


@command
def validate(
    catalog: CatalogArgument,
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the invalid records (JSON Lines) here.")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Invalid records listed.")] = 50,
) -> ExitCode:
    """List the catalog's invalid records, and the config's field names no record has, without syncing.

    Exit 3 if some record is invalid or the config names an id_field, required field or group_by no record has.
    """
    settings = state.load(config, embedder)
    state.check_catalog(catalog)
    model_id = state.embedder_for(settings).model_id
    differ = CatalogDiff(settings, model_id=model_id)
    with catalog.open("rb") as raw, progress_bars(not json_output) as progress:
        stream = open_catalog(
            raw,
            str(catalog),
            csv_delimiter=settings.csv.delimiter,
            id_field=settings.id_field,
            records=settings.source.records,
        )
        result = differ.run(
            stream,
            EmptySnapshot(),
            on_record=(lambda n: progress("diff", n, None)) if progress else None,
        )
    if output:
        with output.open("wb") as handle:
            for record in result.quarantined:
                handle.write(orjson.dumps(record.model_dump(), default=str) + b"\n")
    counts = result.counts
    if json_output:
        data = {
            "records": counts.records,
            "valid": counts.valid,
            "invalid": counts.invalid,
            "problems": [q.model_dump(exclude={"record"}) for q in result.quarantined],
            **config_check_json(result.field_check),
        }
        write_json(data)
    else:
        out.print(f"{catalog}: {counts.records:,} records, {counts.valid:,} valid, {counts.invalid:,} invalid")
        print_config_problems(result.field_check)
        if result.quarantined:
            table = Table(title="Invalid records", title_justify="left")
            table.add_column("where")
            table.add_column("id")
            table.add_column("reason")
            for record in islice(result.quarantined, limit):
                table.add_row(record.location, record.product_id or "-", record.reason)
            out.print(table)
            if len(result.quarantined) > limit:
                out.print(f"[dim]... and {len(result.quarantined) - limit:,} more (use --output or --json)[/]")
    config_errors = result.field_check.errors if result.field_check is not None else []
    return ExitCode.BAD_INPUT if counts.invalid or config_errors else ExitCode.OK
