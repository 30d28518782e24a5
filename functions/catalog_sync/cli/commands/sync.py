"""The writers: `sync`, `watch`, and `monitor` (a sync's plan, which changes nothing)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from catalog_sync.adapters.local.drop_folder import LocalDropFolder
from catalog_sync.adapters.local.files import FileCatalogSource
from catalog_sync.adapters.local.writer_lock import current_writer
from catalog_sync.bootstrap.local import LocalWorkspace
from catalog_sync.cli import state
from catalog_sync.cli.application import command
from catalog_sync.cli.console import err, out, progress_bars, write_json
from catalog_sync.cli.errors import CommandError, ExitCode, Interrupted
from catalog_sync.cli.options import (
    CatalogArgument,
    ChangesShownOption,
    ConfigOption,
    EmbedderOption,
    ForceOption,
    JsonOption,
    StateOption,
    WaitOption,
)
from catalog_sync.cli.render_checks import print_config_problems
from catalog_sync.cli.render_sync import exit_for, print_embedder, print_report, report_json
from catalog_sync.models.changes import RunStatus
from catalog_sync.services.watch import CatalogWatcher, WatchPolicy


def _parse_ids(ids: str | None) -> list[str] | None:
    if ids is None:
        return None
    parsed = [part.strip() for part in ids.split(",") if part.strip()]
    if not parsed:
        raise CommandError("--ids needs at least one id", ExitCode.BAD_INPUT)
    return parsed


def _interrupted_notes(workspace: LocalWorkspace) -> list[str]:
    return [
        f"run {run_id} had been left running by a process that is gone (killed or crashed): it is marked "
        "interrupted, and this sync re-sends what it left pending"
        for run_id in workspace.interrupted
    ]


@command
def monitor(
    catalog: CatalogArgument,
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    full: Annotated[bool, typer.Option("--full", help="Plan a full re-sync.")] = False,
    ids: Annotated[str | None, typer.Option("--ids", help="Only these products (comma-separated).")] = None,
    limit: ChangesShownOption = 20,
) -> ExitCode:
    """Dry run: report what a sync would change, grouped by kind, without changing anything."""
    settings = state.load(config, embedder)
    state.check_catalog(catalog)
    with state.workspace(settings, state_dir) as workspace, progress_bars(not json_output) as progress:
        report = workspace.service().plan(
            FileCatalogSource(catalog), full=full, only_ids=_parse_ids(ids), progress=progress
        )
    writer = current_writer(state.state_root(state_dir) / settings.name)
    if writer is not None:
        # Not blocked, and not blocking: the plan reads the state as it stands, part way through that run.
        report.notes.append(
            f"a writer is at work on this catalog ({writer.describe()}): this plan reads the state part way "
            "through its run, and will differ once it ends"
        )
    if json_output:
        write_json(report_json(report))
    else:
        out.print(f"[bold]Change report[/] for catalog [bold]{settings.name}[/] from {catalog} (dry run)")
        print_embedder(workspace.embedder)
        print_report(report, limit)
        if report.guard.held:
            err.print(f"[bold red]a sync would be held back:[/] {report.guard.reason}")
    return ExitCode.HELD if report.guard.held else ExitCode.OK


@command
def sync(
    catalog: CatalogArgument,
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Re-sync every product (through the embedding cache) and remove orphans."),
    ] = False,
    force: ForceOption = False,
    ids: Annotated[str | None, typer.Option("--ids", help="Only sync these products (comma-separated).")] = None,
    limit: ChangesShownOption = 20,
    wait: WaitOption = 0.0,
) -> ExitCode:
    """Sync the index with a catalog: apply exactly what changed since the last sync."""
    settings = state.load(config, embedder)
    state.check_catalog(catalog)
    only_ids = _parse_ids(ids)
    with (
        state.workspace(settings, state_dir, writable=True, wait=wait) as workspace,
        progress_bars(not json_output) as progress,
    ):
        service = workspace.service()
        service.notes += _interrupted_notes(workspace)
        try:
            report = service.sync(
                FileCatalogSource(catalog), full=full, force=force, only_ids=only_ids, progress=progress
            )
        except KeyboardInterrupt:
            raise Interrupted(service.last_run) from None
    if json_output:
        write_json(report_json(report))
    else:
        title = "full re-sync" if full else "sync"
        out.print(f"[bold]{title.capitalize()}[/] of catalog [bold]{settings.name}[/] from {catalog}")
        print_embedder(workspace.embedder)
        print_report(report, limit)
        if report.guard.held:
            err.print(f"[bold red]held back, nothing changed:[/] {report.guard.reason}")
        elif report.failed:
            err.print(f"[bold red]failed:[/] {report.error}")
        else:
            out.print(f"[bold green]done[/] run {report.run.run_id if report.run else ''}")
    return exit_for(report)


@command
def watch(
    path: Annotated[Path, typer.Argument(help="A catalog file, or a folder whose newest catalog file is used.")],
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    interval: Annotated[float, typer.Option(min=0.0, help="Seconds between regular syncs of pending changes.")] = 300,
    poll: Annotated[float, typer.Option(min=0.01, help="Seconds between checks of the file for changes.")] = 5,
    threshold: Annotated[int, typer.Option(min=1, help="Sync early once this many changes are pending.")] = 10,
    force: ForceOption = False,
    max_syncs: Annotated[int | None, typer.Option(help="Stop after this many syncs (default: until Ctrl+C).")] = None,
    settle: Annotated[
        float, typer.Option(min=0.0, help="Read a file only once it has not changed for this many seconds.")
    ] = 10,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    wait: WaitOption = 0.0,
) -> ExitCode:
    """Poll a file or folder and sync when it changes: early once enough (or priority) changes are pending."""

    def emit(event: dict[str, Any], message: str) -> None:
        if json_output:
            write_json(event)
        else:
            out.print(f"[dim]{datetime.now(UTC):%H:%M:%S}[/] {message}", highlight=False)

    settings = state.load(config, embedder)
    if not path.exists():
        raise CommandError(f"{path} does not exist", ExitCode.BAD_INPUT)
    worst = ExitCode.OK
    with state.workspace(settings, state_dir, writable=True, wait=wait) as workspace:
        service = workspace.service()
        watcher = CatalogWatcher(
            service,
            LocalDropFolder(path),
            WatchPolicy(interval=interval, threshold=threshold, settle=settle),
            poll=poll,
            force=force,
        )
        emit({"event": "start"}, f"watching {path} (interval {interval:g}s, threshold {threshold})")
        for note in _interrupted_notes(workspace):
            emit({"event": "note", "note": note}, f"[yellow]note:[/] {escape(note)}")
        try:
            for event in watcher.events(max_syncs=max_syncs, max_seconds=max_seconds):
                if event.kind == "error":
                    worst = max(worst, ExitCode.BAD_INPUT)
                    emit(
                        {"event": "error", "catalog": event.catalog.location, "error": event.why},
                        f"[red]skipped a bad catalog, nothing changed:[/] {event.why}",
                    )
                    continue
                if event.report is None:
                    emit(
                        {"event": "pending", "catalog": event.catalog.location, "pending": event.pending},
                        f"{event.pending} change(s) pending in {event.catalog.name}; syncing at the threshold "
                        "or the interval",
                    )
                    continue
                report = event.report
                worst = max(worst, exit_for(report))
                held = f" [held: {report.guard.reason}]" if report.guard.held else ""
                emit(
                    {"event": "sync", "why": event.why, "report": report_json(report, include_changes=False)},
                    f"synced {event.catalog.name} ({event.why}): {report.diff.counts.changed:,} changes, "
                    f"{report.applied.embedded:,} embedded{held}",
                )
                if not json_output:  # under --json, the sync event's report has them
                    print_config_problems(report.diff.field_check)
        except KeyboardInterrupt:
            run = service.last_run
            if run is not None and run.status is RunStatus.INTERRUPTED:
                # Ctrl+C during a sync: say what it did, as `sync` does.
                emit({"event": "stop", "interrupted_run": run.run_id}, "stopped during a sync")
                raise Interrupted(run) from None
            emit({"event": "stop"}, "stopped")
    return worst
