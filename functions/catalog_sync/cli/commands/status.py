"""The operator's view: `status` (health, statistics, recent runs) and `runs`, of the local state or a deployed
stack."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.markup import escape

from catalog_sync.cli import state
from catalog_sync.cli.application import command
from catalog_sync.cli.console import out, write_json
from catalog_sync.cli.errors import CommandError, ExitCode
from catalog_sync.cli.html_report import render_report
from catalog_sync.cli.options import (
    CatalogOption,
    ConfigOption,
    IndexEmbedderOption,
    JsonOption,
    RegionOption,
    ShardsOption,
    StackOption,
    StateOption,
)
from catalog_sync.cli.render_runs import RUNS_LEGEND, print_run, print_status, run_json, runs_table, status_json
from catalog_sync.logic.health import HealthSettings
from catalog_sync.logic.runs import newest_first
from catalog_sync.services.status import catalog_status

# At least this many runs are read for the statistics, however few are shown.
RUNS_WINDOW = 30


def _health_settings() -> HealthSettings:
    """Weights and thresholds: the defaults, or JSON in $CATALOG_SYNC_HEALTH (as for the health function)."""
    raw = os.environ.get("CATALOG_SYNC_HEALTH")
    if not raw:
        return HealthSettings()
    try:
        return HealthSettings.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise CommandError(f"CATALOG_SYNC_HEALTH is invalid: {problems}", ExitCode.BAD_INPUT) from exc


@command
def status(
    config: ConfigOption = None,
    embedder: IndexEmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    stack: StackOption = None,
    region: RegionOption = None,
    catalog: CatalogOption = None,
    state_shards: ShardsOption = None,
    runs: Annotated[int, typer.Option(min=1, help="How many recent runs to show.")] = 10,
    html_file: Annotated[
        Path | None,
        typer.Option("--html", help="Also write a self-contained HTML report (health, charts, alerts) here."),
    ] = None,
) -> ExitCode:
    """Health (score and alerts), statistics and recent runs: of the local catalog, or of a deployed stack."""
    now = datetime.now(UTC)
    settings = _health_settings()
    with state.catalogs(
        config=config,
        embedder=embedder,
        state_dir=state_dir,
        stack=stack,
        region=region,
        catalog=catalog,
        state_shards=state_shards,
    ) as (label, items):
        reports = [
            (
                catalog_status(
                    item.state,
                    catalog=item.name,
                    now=now,
                    settings=settings,
                    runs_limit=max(RUNS_WINDOW, runs),
                    vectors_in_index=item.vectors_in_index,
                ),
                item,
            )
            for item in items
        ]
    if html_file is not None:
        page = render_report([s for s, _ in reports], source=label, generated_at=now, runs_shown=runs)
        html_file.write_text(page, encoding="utf-8")
    if json_output:
        payloads = [status_json(s, item, runs) for s, item in reports]
        data: dict[str, Any] = (
            {"stack": stack, "source": label, "catalogs": payloads} if stack is not None else payloads[0]
        )
        if html_file is not None:
            data["html"] = str(html_file)
        write_json(data)
        return ExitCode.OK
    if stack is not None:
        out.print(f"[bold]{escape(label)}[/]: {len(reports)} catalog(s)", highlight=False)
    for i, (report, item) in enumerate(reports):
        if i:
            out.print()
        print_status(report, item, runs)
    if reports:
        out.print(RUNS_LEGEND)
    if html_file is not None:
        out.print(f"report written to {html_file}", highlight=False)
    return ExitCode.OK


@command
def runs_command(
    run_id: Annotated[str | None, typer.Argument(help="Show only this run (found by its id alone).")] = None,
    config: ConfigOption = None,
    embedder: IndexEmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    stack: StackOption = None,
    region: RegionOption = None,
    catalog: CatalogOption = None,
    state_shards: ShardsOption = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs (newest first, all catalogs together).")] = 30,
) -> ExitCode:
    """The last runs: of the local catalog, or of every catalog of a deployed stack; or one run by its id."""
    if run_id is not None:
        state.check_sources(stack=stack, config=None, state_dir=state_dir, catalog=catalog)
        run = state.find_run(
            run_id, state_dir=state_dir, stack=stack, region=region, state_shards=state_shards, embedder=embedder
        )
        if json_output:
            write_json(run_json(run))
            return ExitCode.OK
        print_run(run)
        return ExitCode.OK
    with state.catalogs(
        config=config,
        embedder=embedder,
        state_dir=state_dir,
        stack=stack,
        region=region,
        catalog=catalog,
        state_shards=state_shards,
    ) as (label, items):
        history = newest_first([run for item in items for run in item.state.runs(limit)])[:limit]
    if json_output:
        write_json([run_json(run) for run in history])
        return ExitCode.OK
    title = f"The last {len(history)} runs: {label}"
    out.print(runs_table(history, title=escape(title), with_catalog=stack is not None, run_ids=True))
    out.print(RUNS_LEGEND)
    return ExitCode.OK
