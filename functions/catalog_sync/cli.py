"""The `catalog-sync` command line, on the embedded default (`status` and `runs` also read a deployed stack).

Exit codes: 0 ok, 1 failed, 2 held back by the deletion guard, 3 bad input (catalog, configuration or usage),
4 another writer holds the catalog's state, 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from catalog_sync.adapters.embedders.factory import build_embedder
from catalog_sync.adapters.embedders.minilm import EmbedderUnavailable
from catalog_sync.adapters.local.files import FileCatalogSource
from catalog_sync.adapters.local.lance_index import LocalIndexError
from catalog_sync.adapters.local.sqlite_state import STATE_FILE, SqliteStateStore, catalog_of_run
from catalog_sync.adapters.local.workspace import DEFAULT_ROOT, LocalWorkspace, writer_workspace
from catalog_sync.adapters.local.writer_lock import Holder, WriterBusy, current_writer
from catalog_sync.html_report import render_report
from catalog_sync.logic.diff import CatalogDiff, DiffResult, EmptySnapshot
from catalog_sync.logic.health import HealthSettings
from catalog_sync.logic.readers import CatalogFormatError, open_catalog
from catalog_sync.logic.runs import duration_seconds, newest_first
from catalog_sync.models.changes import Change, ChangeKind, RunRecord, RunStatus
from catalog_sync.models.config import CatalogConfig, ConfigError, EmbedderKind, FieldType, load_config
from catalog_sync.models.index import IndexRejection
from catalog_sync.ports import Embedder, StateStore
from catalog_sync.services.status import CatalogStatus, catalog_status
from catalog_sync.services.sync import BadCatalog, SyncReport
from catalog_sync.services.watch import CatalogWatcher, WatchPolicy


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    HELD = 2
    BAD_INPUT = 3
    BUSY = 4
    INTERRUPTED = 130


app = typer.Typer(
    name="catalog-sync",
    help="Keep a vector index exactly in step with a product catalog, doing the minimum work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True, soft_wrap=True)

DEFAULT_CONFIG_NAMES = ("catalog-sync.toml", "catalog-sync.yaml", "catalog-sync.yml")

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


class CommandError(Exception):
    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


class Interrupted(Exception):
    """Ctrl+C stopped a sync: the run (recorded as interrupted) says what it applied."""

    def __init__(self, run: RunRecord | None) -> None:
        self.run = run
        if run is None or run.status is not RunStatus.INTERRUPTED:
            message = "stopped by Ctrl+C before a run began: nothing was changed"
        else:
            pending = run.counts.get("pending_after")
            left = f" {pending:,} products are pending." if pending is not None else ""
            message = (
                f"run {run.run_id} {run.message or 'was interrupted'}.{left} "
                "Run `catalog-sync sync` again to resume: it re-sends only what was not applied."
            )
        super().__init__(message)


def _resolve_config(path: Path | None) -> Path:
    if path is not None:
        return path
    from_env = os.environ.get("CATALOG_SYNC_CONFIG")
    if from_env:
        return Path(from_env)
    for name in DEFAULT_CONFIG_NAMES:
        if Path(name).exists():
            return Path(name)
    raise CommandError("no catalog config: pass --config FILE (or set CATALOG_SYNC_CONFIG)", ExitCode.BAD_INPUT)


def _load(config_path: Path | None, embedder: EmbedderKind | None) -> CatalogConfig:
    try:
        config = load_config(_resolve_config(config_path))
    except ConfigError as exc:
        raise CommandError(str(exc), ExitCode.BAD_INPUT) from exc
    if embedder is not None:
        config = config.model_copy(update={"embedder": config.embedder.model_copy(update={"kind": embedder})})
    return config


def _state_root(state_dir: Path | None) -> Path:
    return state_dir or Path(os.environ.get("CATALOG_SYNC_STATE_DIR", str(DEFAULT_ROOT)))


@contextmanager
def _workspace(
    config: CatalogConfig,
    state_dir: Path | None,
    *,
    writable: bool = False,
    must_exist: bool = False,
    wait: float = 0.0,
) -> Iterator[LocalWorkspace]:
    """The catalog's local state. Readers never create it: a mistyped --state-dir is an error, not a new catalog.

    A writer holds the catalog's writer lock for as long as it uses the workspace (waiting up to `wait` seconds
    for another writer, then WriterBusy); readers take no lock and are never blocked."""
    root = _state_root(state_dir)
    if writable:

        def waiting(holder: Holder | None) -> None:
            who = holder.describe() if holder is not None else "another writer"
            err.print(f"[yellow]waiting[/] up to {wait:g} s for the writer of catalog {config.name!r}: {who}")

        with writer_workspace(root, config, build_embedder(config.embedder), wait=wait, on_wait=waiting) as workspace:
            yield workspace
        return
    if must_exist and not (root / config.name / "state.sqlite").exists():
        raise CommandError(
            f"no state for catalog {config.name!r} under {root}: run `catalog-sync sync` first, or check --state-dir",
            ExitCode.FAILED,
        )
    if not writable and not must_exist and not (root / config.name / "state.sqlite").exists():
        # A dry run of a catalog never synced: plan against empty state, leaving nothing behind.
        with tempfile.TemporaryDirectory(prefix="catalog-sync-plan-") as scratch:
            workspace = LocalWorkspace(Path(scratch), config, build_embedder(config.embedder), writable=False)
            try:
                yield workspace
            finally:
                workspace.close()
        return
    workspace = LocalWorkspace(root, config, build_embedder(config.embedder), writable=False)
    try:
        yield workspace
    finally:
        workspace.close()


def _run(command: Any, *, json_output: bool = False) -> None:
    """Run a command body, turning known failures into clear messages and exit codes."""
    try:
        code = command()
    except CommandError as exc:
        _fail(json_output, "error", str(exc), exc.code)
    except WriterBusy as exc:
        _fail(json_output, "busy", str(exc), ExitCode.BUSY)
    except Interrupted as exc:
        _fail(json_output, "interrupted", str(exc), ExitCode.INTERRUPTED, run_id=exc.run.run_id if exc.run else None)
    except KeyboardInterrupt:
        _fail(json_output, "interrupted", "stopped by Ctrl+C: nothing was changed", ExitCode.INTERRUPTED)
    except (BadCatalog, CatalogFormatError, ConfigError) as exc:
        _fail(json_output, "bad input", str(exc), ExitCode.BAD_INPUT)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _fail(json_output, "bad input", f"cannot use{where}: {exc.strerror or exc}", ExitCode.BAD_INPUT)
    except (EmbedderUnavailable, LocalIndexError) as exc:
        _fail(json_output, "error", str(exc), ExitCode.FAILED)
    raise typer.Exit(int(code or ExitCode.OK))


def _fail(json_output: bool, label: str, message: str, code: ExitCode, **extra: Any) -> None:
    if json_output:
        payload = {"error": message, "exit_code": int(code), **{k: v for k, v in extra.items() if v is not None}}
        sys.stdout.write(orjson.dumps(payload).decode() + "\n")
        sys.stdout.flush()
    err.print(f"[bold red]{label}:[/] {escape(message)}", highlight=False)
    raise typer.Exit(int(code))


@contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            label = {"diff": "reading and diffing", "apply": "embedding and writing"}.get(stage, stage)
            tasks[stage] = progress.add_task(label, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    with progress:
        yield update


# ---------------------------------------------------------------- rendering

GROUPS = (
    ("ADDED", (ChangeKind.ADDED,), "green"),
    ("MODIFIED", (ChangeKind.TEXT_CHANGED,), "yellow"),
    ("METADATA-ONLY", (ChangeKind.METADATA_ONLY,), "cyan"),
    ("DELETED", (ChangeKind.DELETED,), "red"),
)


def _change_json(change: Change) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": change.product_id,
        "kind": change.kind.value,
        "action": change.action.value,
        "priority": change.priority,
        "fields_changed": list(change.fields_changed),
    }
    if change.reason:
        data["reason"] = change.reason
    return data


def _report_json(report: SyncReport, *, include_changes: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "catalog": report.catalog,
        "source": report.source,
        "embedder": report.embedder,
        "dry_run": report.dry_run,
        "run_id": report.run.run_id if report.run else None,
        "status": report.run.status.value if report.run else ("held" if report.guard.held else "planned"),
        "counts": report.diff.counts.model_dump(),
        "resent": report.diff.resent,
        "held": report.guard.held,
        "guard_reason": report.guard.reason,
        "delete_share": round(report.guard.delete_share, 6),
        "applied": report.applied.as_dict(),
        "rejections": [r.model_dump(mode="json") for r in report.applied.rejected],
        "pending_after": report.pending_after,
        "quarantine": report.quarantine_location,
        "notes": report.notes,
        "timings": {name: round(value, 4) for name, value in report.timings.items()},
        "error": report.error,
    }
    if include_changes:
        data["changes"] = [_change_json(c) for c in report.diff.changes if c.kind is not ChangeKind.UNCHANGED]
    return data


def _print_changes(result: DiffResult, limit: int) -> None:
    counts = result.counts.model_dump()
    for title, kinds, colour in GROUPS:
        total = sum(counts[kind.value] for kind in kinds)
        if not total:
            continue
        out.print(f"\n[bold {colour}]{title}[/] ({total:,})")
        for change in islice((c for c in result.changes if c.kind in kinds), limit):
            mark = " [bold magenta]priority[/]" if change.priority else ""
            fields = f"  fields: {', '.join(change.fields_changed)}" if change.fields_changed else ""
            reason = f"  [dim]({change.reason})[/]" if change.reason else ""
            out.print(f"  {change.product_id}{fields}{mark}{reason}", highlight=False)
        if total > limit:
            out.print(f"  [dim]... and {total - limit:,} more (use --limit or --json)[/]")


def _print_stats(report: SyncReport) -> None:
    counts = report.diff.counts
    table = Table(title="Statistics", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("records read", counts.records),
        ("valid", counts.valid),
        ("invalid (quarantined)", counts.invalid),
        ("added", counts.added),
        ("modified (re-embed)", counts.text_changed),
        ("metadata-only (no embedding)", counts.metadata_only),
        ("deleted", counts.deleted),
        ("unchanged", counts.unchanged),
        ("priority changes", counts.priority),
    ]
    if report.diff.resent:
        rows.append(("re-sent (not committed before)", report.diff.resent))
    if not report.dry_run and report.run is not None and not report.guard.held:
        applied = report.applied
        rows += [
            ("texts embedded", applied.embedded),
            ("embedding cache hits", applied.cache_hits),
            ("vectors upserted", applied.upserted),
            ("metadata updated in place", applied.metadata_updated),
            ("vectors deleted", applied.deleted),
            ("pending after run", report.pending_after),
        ]
    for name, value in rows:
        table.add_row(name, f"{value:,}")
    out.print()
    out.print(table)
    seconds = sum(report.timings.values())
    if counts.records and seconds:
        out.print(f"[dim]{seconds:.2f} s ({counts.records / seconds:,.0f} records/s)[/]")


def _print_embedder(embedder: Embedder) -> None:
    # The hashing embedder is for tests: say so wherever it is in use.
    colour = "bold red" if embedder.model_id.startswith("catalog-sync/hashing") else "dim"
    out.print(f"[{colour}]embedder: {embedder.label} ({embedder.model_id})[/]", highlight=False)


def _print_report(report: SyncReport, limit: int) -> None:
    for note in report.notes:
        out.print(f"[bold yellow]note:[/] {note}")
    _print_changes(report.diff, limit)
    _print_stats(report)
    if report.quarantine_location:
        out.print(
            f"[yellow]{report.diff.counts.invalid:,} invalid records quarantined:[/] {report.quarantine_location}"
        )
    elif report.diff.counts.invalid:
        out.print(f"[yellow]{report.diff.counts.invalid:,} invalid records would be quarantined[/] (see `validate`)")
    _print_rejections(report.applied.rejected, len(report.applied.rejected))


def _interrupted_notes(workspace: LocalWorkspace) -> list[str]:
    return [
        f"run {run_id} had been left running by a process that is gone (killed or crashed): it is marked "
        "interrupted, and this sync re-sends what it left pending"
        for run_id in workspace.interrupted
    ]


def _print_rejections(rejections: list[IndexRejection], total: int) -> None:
    """Products the index refused: they stay pending, each with the index's reason."""
    if not rejections:
        return
    out.print(f"[yellow]{total:,} products refused by the index[/] (they stay pending):")
    for rejection in rejections[:10]:
        out.print(f"  {escape(rejection.product_id)} ({rejection.action}): {escape(rejection.reason)}", highlight=False)
    if total > 10:
        out.print(f"  [dim]... and {total - 10:,} more (use --json)[/]")


def _exit_for(report: SyncReport) -> ExitCode:
    if report.guard.held:
        return ExitCode.HELD
    if report.failed:
        return ExitCode.FAILED
    return ExitCode.OK


def _parse_ids(ids: str | None) -> list[str] | None:
    if ids is None:
        return None
    parsed = [part.strip() for part in ids.split(",") if part.strip()]
    if not parsed:
        raise CommandError("--ids needs at least one id", ExitCode.BAD_INPUT)
    return parsed


def _check_catalog(path: Path) -> None:
    if not path.exists():
        raise CommandError(f"catalog {path} does not exist", ExitCode.BAD_INPUT)
    if path.is_dir():
        raise CommandError(f"catalog {path} is a folder; name a file (or use `watch` on a folder)", ExitCode.BAD_INPUT)


# ---------------------------------------------------------------- commands


@app.command()
def monitor(
    catalog: Annotated[Path, typer.Argument(help="Catalog file (.json, .jsonl, .csv, optionally .gz).")],
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    full: Annotated[bool, typer.Option("--full", help="Plan a full re-sync.")] = False,
    ids: Annotated[str | None, typer.Option("--ids", help="Only these products (comma-separated).")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Changes listed per group.")] = 20,
) -> None:
    """Dry run: report what a sync would change, grouped by kind, without changing anything."""

    def body() -> ExitCode:
        settings = _load(config, embedder)
        _check_catalog(catalog)
        with _workspace(settings, state_dir) as workspace, _progress(not json_output) as progress:
            report = workspace.service().plan(
                FileCatalogSource(catalog), full=full, only_ids=_parse_ids(ids), progress=progress
            )
        writer = current_writer(_state_root(state_dir) / settings.name)
        if writer is not None:
            # Not blocked, and not blocking: the plan reads the state as it stands, part way through that run.
            report.notes.append(
                f"a writer is at work on this catalog ({writer.describe()}): this plan reads the state part way "
                "through its run, and will differ once it ends"
            )
        if json_output:
            sys.stdout.write(orjson.dumps(_report_json(report)).decode() + "\n")
        else:
            out.print(f"[bold]Change report[/] for catalog [bold]{settings.name}[/] from {catalog} (dry run)")
            _print_embedder(workspace.embedder)
            _print_report(report, limit)
            if report.guard.held:
                err.print(f"[bold red]a sync would be held back:[/] {report.guard.reason}")
        return ExitCode.HELD if report.guard.held else ExitCode.OK

    _run(body, json_output=json_output)


@app.command()
def sync(
    catalog: Annotated[Path, typer.Argument(help="Catalog file (.json, .jsonl, .csv, optionally .gz).")],
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Re-sync every product (through the embedding cache) and remove orphans."),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Pass the deletion guard.")] = False,
    ids: Annotated[str | None, typer.Option("--ids", help="Only sync these products (comma-separated).")] = None,
    limit: Annotated[int, typer.Option(min=0, help="Changes listed per group.")] = 20,
    wait: WaitOption = 0.0,
) -> None:
    """Sync the index with a catalog: apply exactly what changed since the last sync."""

    def body() -> ExitCode:
        settings = _load(config, embedder)
        _check_catalog(catalog)
        only_ids = _parse_ids(ids)
        with (
            _workspace(settings, state_dir, writable=True, wait=wait) as workspace,
            _progress(not json_output) as progress,
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
            sys.stdout.write(orjson.dumps(_report_json(report)).decode() + "\n")
        else:
            title = "full re-sync" if full else "sync"
            out.print(f"[bold]{title.capitalize()}[/] of catalog [bold]{settings.name}[/] from {catalog}")
            _print_embedder(workspace.embedder)
            _print_report(report, limit)
            if report.guard.held:
                err.print(f"[bold red]held back, nothing changed:[/] {report.guard.reason}")
            elif report.failed:
                err.print(f"[bold red]failed:[/] {report.error}")
            else:
                out.print(f"[bold green]done[/] run {report.run.run_id if report.run else ''}")
        return _exit_for(report)

    _run(body, json_output=json_output)


@app.command()
def watch(
    path: Annotated[Path, typer.Argument(help="A catalog file, or a folder whose newest catalog file is used.")],
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    interval: Annotated[float, typer.Option(min=0.0, help="Seconds between regular syncs of pending changes.")] = 300,
    poll: Annotated[float, typer.Option(min=0.01, help="Seconds between checks of the file for changes.")] = 5,
    threshold: Annotated[int, typer.Option(min=1, help="Sync early once this many changes are pending.")] = 10,
    force: Annotated[bool, typer.Option("--force", help="Pass the deletion guard.")] = False,
    max_syncs: Annotated[int | None, typer.Option(help="Stop after this many syncs (default: until Ctrl+C).")] = None,
    settle: Annotated[
        float, typer.Option(min=0.0, help="Read a file only once it has not changed for this many seconds.")
    ] = 10,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
    wait: WaitOption = 0.0,
) -> None:
    """Poll a file or folder and sync when it changes: early once enough (or priority) changes are pending."""

    def emit(event: dict[str, Any], message: str) -> None:
        if json_output:
            sys.stdout.write(orjson.dumps(event).decode() + "\n")
            sys.stdout.flush()
        else:
            out.print(f"[dim]{datetime.now(UTC):%H:%M:%S}[/] {message}", highlight=False)

    def body() -> ExitCode:
        settings = _load(config, embedder)
        if not path.exists():
            raise CommandError(f"{path} does not exist", ExitCode.BAD_INPUT)
        worst = ExitCode.OK
        with _workspace(settings, state_dir, writable=True, wait=wait) as workspace:
            service = workspace.service()
            watcher = CatalogWatcher(
                service,
                path,
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
                            {"event": "error", "catalog": str(event.catalog), "error": event.why},
                            f"[red]skipped a bad catalog, nothing changed:[/] {event.why}",
                        )
                        continue
                    if event.report is None:
                        emit(
                            {"event": "pending", "catalog": str(event.catalog), "pending": event.pending},
                            f"{event.pending} change(s) pending in {event.catalog.name}; syncing at the threshold "
                            "or the interval",
                        )
                        continue
                    report = event.report
                    worst = max(worst, _exit_for(report))
                    held = f" [held: {report.guard.reason}]" if report.guard.held else ""
                    emit(
                        {"event": "sync", "why": event.why, "report": _report_json(report, include_changes=False)},
                        f"synced {event.catalog.name} ({event.why}): {report.diff.counts.changed:,} changes, "
                        f"{report.applied.embedded:,} embedded{held}",
                    )
            except KeyboardInterrupt:
                run = service.last_run
                if run is not None and run.status is RunStatus.INTERRUPTED:
                    # Ctrl+C during a sync: say what it did, as `sync` does.
                    emit({"event": "stop", "interrupted_run": run.run_id}, "stopped during a sync")
                    raise Interrupted(run) from None
                emit({"event": "stop"}, "stopped")
        return worst

    _run(body, json_output=json_output)


# ---------------------------------------------------------------- the operator's view: status and runs

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
RUNS_WINDOW = 30


@dataclass
class _Catalog:
    """One catalog's state, wherever it lives; the index and cache counts only where they are cheap (local)."""

    name: str
    state: StateStore
    vectors_in_index: int | None = None
    cache_entries: int | None = None
    # Locally: the sync or watch at work on the catalog right now, if any.
    writer: Holder | None = None


@contextmanager
def _aws_errors() -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    from catalog_sync.adapters.aws.stack import DeploymentError

    try:
        yield
    except DeploymentError as exc:
        raise CommandError(str(exc), ExitCode.FAILED) from exc
    except (BotoCoreError, ClientError) as exc:
        raise CommandError(f"AWS: {exc}", ExitCode.FAILED) from exc


def _check_sources(*, stack: str | None, config: Path | None, state_dir: Path | None, catalog: str | None) -> None:
    if stack is not None and (config is not None or state_dir is not None):
        raise CommandError(
            "--stack reads a deployed stack; --config and --state-dir are for the embedded default", ExitCode.BAD_INPUT
        )
    if stack is None and catalog is not None:
        raise CommandError("--catalog goes with --stack (locally, the config names the catalog)", ExitCode.BAD_INPUT)


@contextmanager
def _stack_clients(stack: str, region: str | None) -> Iterator[tuple[Any, Any, Any, str]]:
    """DynamoDB and S3 clients, the stack's table and bucket (from its outputs), and the source label."""
    import boto3

    from catalog_sync.adapters.aws.stack import deployment

    with _aws_errors():
        session = boto3.session.Session(region_name=region)
        found = deployment(session.client("cloudformation"), stack)
        yield session.client("dynamodb"), session.client("s3"), found, f"stack {stack} ({session.region_name})"


@contextmanager
def _catalogs(
    *,
    config: Path | None,
    embedder: EmbedderKind | None,
    state_dir: Path | None,
    stack: str | None,
    region: str | None,
    catalog: str | None,
    state_shards: int | None,
) -> Iterator[tuple[str, list[_Catalog]]]:
    """The catalogs to report on, with a label saying where they come from: the configured catalog's local state,
    or every catalog of a deployed stack (those with state in its table or a config in its bucket)."""
    _check_sources(stack=stack, config=config, state_dir=state_dir, catalog=catalog)
    if stack is None:
        settings = _load(config, embedder)
        with _workspace(settings, state_dir, must_exist=True) as workspace:
            local = _Catalog(
                settings.name,
                workspace.state,
                workspace.index.count(),
                cache_entries=workspace.cache.count(),
                writer=current_writer(workspace.directory),
            )
            yield f"embedded default ({_state_root(state_dir)})", [local]
        return
    from botocore.exceptions import ClientError

    from catalog_sync.adapters.aws.dynamodb_state import DEFAULT_SHARDS, DynamoStateStore
    from catalog_sync.adapters.aws.stack import deployed_catalogs

    with _stack_clients(stack, region) as (dynamodb, s3, found, label):
        try:
            names = deployed_catalogs(dynamodb, s3, table=found.table, bucket=found.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("AccessDenied", "AccessDeniedException"):
                raise
            err.print("[yellow]note:[/] cannot list the configs in the bucket: only catalogs with state are shown")
            names = deployed_catalogs(dynamodb, None, table=found.table, bucket=None)
        if catalog is not None:
            if catalog not in names:
                raise CommandError(f"no catalog {catalog!r} in stack {stack!r}", ExitCode.FAILED)
            names = {catalog: names[catalog]}
        concurrency = int(os.environ.get("CATALOG_SYNC_STATE_CONCURRENCY", "8"))
        yield (
            label,
            [
                _Catalog(
                    name,
                    DynamoStateStore(
                        dynamodb,
                        table=found.table,
                        catalog=name,
                        shards=state_shards or shards or DEFAULT_SHARDS,
                        concurrency=concurrency,
                    ),
                )
                for name, shards in names.items()
            ],
        )


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


def _status_json(status: CatalogStatus, item: _Catalog, runs_shown: int) -> dict[str, Any]:
    health = status.health
    return {
        "catalog": status.catalog,
        "products": status.products,
        "indexed": status.indexed,
        "vectors_in_index": item.vectors_in_index,
        "pending": status.pending,
        "deleting": status.deleting,
        "synced": status.synced,
        "rejected": status.rejected,
        "rejections": [r.model_dump(mode="json") for r in status.rejections],
        "embedding_cache_entries": item.cache_entries,
        "writer": item.writer.model_dump(mode="json") if item.writer is not None else None,
        "hours_since_last_success": round(health.hours_since_success, 3)
        if health.hours_since_success is not None
        else None,
        "healthy": health.healthy,
        "score": health.score,
        "alerts": [alert.model_dump(mode="json") for alert in health.alerts],
        "health": health.model_dump(mode="json"),
        "statistics": status.statistics.model_dump(mode="json"),
        "runs": [run.model_dump(mode="json") for run in status.runs[:runs_shown]],
    }


LEVEL_STYLES = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


RUN_COUNT_KEYS = (
    ("+", "added"),
    ("~", "text_changed"),
    ("m", "metadata_only"),
    ("-", "deleted"),
    ("inv", "invalid"),
    ("emb", "applied_embedded"),
    ("hit", "applied_cache_hits"),
)
SHORT_MODES = {"incremental": "incr"}
SHORT_STATUSES = {
    RunStatus.SUCCEEDED: "ok",
    RunStatus.DRY_RUN: "dry",
    RunStatus.DISPATCHED: "disp",
    RunStatus.RUNNING: "run",
    RunStatus.INTERRUPTED: "intr",
    RunStatus.FAILED: "fail",
}


def _run_cells(run: RunRecord, *, run_ids: bool) -> tuple[list[str], str, str, str]:
    """The run's name (its id, or its number and start), mode, status and seconds, as shown in a table."""
    seconds = duration_seconds(run)
    return (
        [escape(run.run_id)] if run_ids else [str(run.seq), f"{run.started_at:%m-%d %H:%M}"],
        escape(SHORT_MODES.get(run.mode, run.mode)),
        SHORT_STATUSES.get(run.status, run.status.value),
        f"{seconds:.1f}" if seconds is not None else "-",
    )


def _runs_table(
    history: list[RunRecord],
    *,
    title: str,
    with_catalog: bool = False,
    run_ids: bool = False,
    width: int | None = None,
) -> Table:
    """One row per run, a column per count, when that fits the terminal (`width`, default the console's); else
    two lines per run, the counts on the second: ids and counts are never cut short, at 80 columns too."""
    wide = _wide_runs_table(history, title=title, with_catalog=with_catalog, run_ids=run_ids)
    width = width or out.width
    # Its natural width, measured without a limit (a measure within `width` is clamped to it).
    if Measurement.get(out, out.options.update_width(10_000), wide).maximum <= width:
        return wide
    return _stacked_runs_table(history, title=title, with_catalog=with_catalog, run_ids=run_ids, width=width)


def _wide_runs_table(history: list[RunRecord], *, title: str, with_catalog: bool, run_ids: bool) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    columns = [
        *(["catalog"] if with_catalog else []),
        *(["run"] if run_ids else ["run", "started"]),
        "mode",
        "status",
        *(symbol for symbol, _ in RUN_COUNT_KEYS),
        "s",
    ]
    for column in columns:
        left = column in ("catalog", "started", "mode", "status") or (column == "run" and run_ids)
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for run in history:
        name, mode, status, seconds = _run_cells(run, run_ids=run_ids)
        table.add_row(
            *([escape(run.catalog)] if with_catalog else []),
            *name,
            mode,
            status,
            *(f"{run.counts.get(key, 0):,}" for _, key in RUN_COUNT_KEYS),
            seconds,
        )
    return table


def _stacked_runs_table(
    history: list[RunRecord], *, title: str, with_catalog: bool, run_ids: bool, width: int
) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    rows = [(run, *_run_cells(run, run_ids=run_ids)) for run in history]
    heads = [*(["started"] if not run_ids else []), "mode", "status", "s"]
    # Widths of the other columns (their headers or their widest cell), 3 between columns, and the two edges.
    others = [max([len(head), *(len(cell) for cell in cells)]) for head, cells in _columns(rows, heads)]
    room = max(width - sum(others) - 3 * len(others) - 2, 20)
    table.add_column("catalog / run / counts" if with_catalog else "run / counts", overflow="fold")
    for head in heads:
        table.add_column(head, justify="right" if head == "s" else "left", no_wrap=True)
    for run, name, mode, status, seconds in rows:
        first = f"{escape(run.catalog)} {name[0]}" if with_catalog else name[0]
        table.add_row(first, *name[1:], mode, status, seconds)
        # Broken between counts, never within one (the table would break at any space).
        tokens = [f"{symbol} {run.counts.get(key, 0):,}" for symbol, key in RUN_COUNT_KEYS]
        lines: list[str] = []
        for token in tokens:
            if lines and len(lines[-1]) + 2 + len(token) <= room:
                lines[-1] += "  " + token
            else:
                lines.append("  " + token)
        table.add_row("[dim]" + "\n".join(lines) + "[/]", *([""] * len(heads)), end_section=True)
    return table


def _columns(rows: list[tuple[Any, ...]], heads: list[str]) -> list[tuple[str, list[str]]]:
    """Each of the stacked table's other columns: its header and its cells."""
    cells: dict[str, list[str]] = {head: [] for head in heads}
    for _run, name, mode, status, seconds in rows:
        for head, value in zip(heads, [*name[1:], mode, status, seconds], strict=True):
            cells[head].append(value)
    return [(head, cells[head]) for head in heads]


RUNS_LEGEND = (
    "[dim]+ added  ~ modified (re-embedded)  m metadata-only  - deleted  inv invalid\n"
    "emb texts embedded  hit cache hits  s seconds to the last change applied\n"
    "ok succeeded  fail failed  held held back  intr interrupted  disp dispatched[/]"
)


def _print_status(status: CatalogStatus, item: _Catalog, runs_shown: int) -> None:
    health = status.health
    stats = status.statistics
    colour = {"good": "green", "fair": "yellow", "poor": "red"}[health.grade]
    verdict = "healthy" if health.healthy else "attention"
    out.print(f"[bold]Catalog {escape(status.catalog)}[/]: health [bold {colour}]{health.score:.1f}[/] ({verdict})")
    components = health.components
    freshness = f"coverage {components.coverage:.1%}  freshness {components.freshness:.1%}"
    freshness += f"  quality {components.quality:.1%}"
    if health.hours_since_success is not None:
        freshness += f"  last success {health.hours_since_success:,.1f} h ago"
    out.print(freshness, highlight=False)
    counts = f"products {status.products:,}  indexed {status.indexed:,}"
    if item.vectors_in_index is not None:
        counts += f"  vectors {item.vectors_in_index:,}"
    counts += f"  pending {status.pending:,}"
    if item.cache_entries is not None:
        counts += f"  cached embeddings {item.cache_entries:,}"
    out.print(counts, highlight=False)
    if item.writer is not None:
        out.print(f"[cyan]writer at work:[/] {escape(item.writer.describe())}", highlight=False)
    for alert in health.alerts:
        style = LEVEL_STYLES[alert.level.value]
        line = f"  [{style}]{alert.level.value:<8}[/] {escape(alert.code)}: {escape(alert.message)}"
        out.print(line, highlight=False)
    _print_rejections(status.rejections, status.rejected)

    def pct(value: float | None) -> str:
        return f"{value:.0%}" if value is not None else "-"

    window = f" over {stats.window_hours:,.1f} h" if stats.window_hours is not None else ""
    average = f"{stats.average_duration_s:,.1f} s" if stats.average_duration_s is not None else "-"
    out.print(
        f"last {stats.runs} runs{window}: success rate {pct(stats.success_rate)}, average duration {average}",
        highlight=False,
    )
    out.print(
        f"products synced per hour {stats.products_synced_per_hour or 0:,.1f}, embedding cache hit rate "
        f"{pct(stats.cache_hit_rate)}",
        highlight=False,
    )
    out.print(_runs_table(status.runs[:runs_shown], title="Recent runs"))


@app.command()
def status(
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
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
) -> None:
    """Health (score and alerts), statistics and recent runs: of the local catalog, or of a deployed stack."""

    def body() -> ExitCode:
        now = datetime.now(UTC)
        settings = _health_settings()
        with _catalogs(
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
            payloads = [_status_json(s, item, runs) for s, item in reports]
            data: dict[str, Any] = (
                {"stack": stack, "source": label, "catalogs": payloads} if stack is not None else payloads[0]
            )
            if html_file is not None:
                data["html"] = str(html_file)
            sys.stdout.write(orjson.dumps(data).decode() + "\n")
            return ExitCode.OK
        if stack is not None:
            out.print(f"[bold]{escape(label)}[/]: {len(reports)} catalog(s)", highlight=False)
        for i, (report, item) in enumerate(reports):
            if i:
                out.print()
            _print_status(report, item, runs)
        if reports:
            out.print(RUNS_LEGEND)
        if html_file is not None:
            out.print(f"report written to {html_file}", highlight=False)
        return ExitCode.OK

    _run(body, json_output=json_output)


def _run_json(run: RunRecord) -> dict[str, Any]:
    return {**run.model_dump(mode="json"), "duration_s": duration_seconds(run)}


def _find_run(
    run_id: str, *, state_dir: Path | None, stack: str | None, region: str | None, state_shards: int | None
) -> RunRecord:
    """One run by its id alone: the catalog it belongs to comes from the local catalogs or the stack's table."""
    if stack is None:
        root = _state_root(state_dir)
        name = catalog_of_run(root, run_id)
        if name is None:
            raise CommandError(f"no run {run_id!r} in the catalogs under {root}", ExitCode.FAILED)
        store = SqliteStateStore(root / name / STATE_FILE, name)
        try:
            found = store.find_run(run_id)
        finally:
            store.close()
    else:
        from catalog_sync.adapters.aws import dynamodb_state

        with _stack_clients(stack, region) as (dynamodb, _s3, deployed, _label):
            name = dynamodb_state.catalog_of_run(dynamodb, table=deployed.table, run_id=run_id)
            if name is None:
                raise CommandError(f"no run {run_id!r} in stack {stack!r}", ExitCode.FAILED)
            shards = state_shards or dynamodb_state.registered_catalogs(dynamodb, table=deployed.table).get(
                name, dynamodb_state.DEFAULT_SHARDS
            )
            dynamo = dynamodb_state.DynamoStateStore(dynamodb, table=deployed.table, catalog=name, shards=shards)
            found = dynamo.find_run(run_id)
    if found is None:
        raise CommandError(f"run {run_id!r} of catalog {name!r} has no record", ExitCode.FAILED)
    return found


@app.command("runs")
def runs_command(
    run_id: Annotated[str | None, typer.Argument(help="Show only this run (found by its id alone).")] = None,
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    stack: StackOption = None,
    region: RegionOption = None,
    catalog: CatalogOption = None,
    state_shards: ShardsOption = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs (newest first, all catalogs together).")] = 30,
) -> None:
    """The last runs: of the local catalog, or of every catalog of a deployed stack; or one run by its id."""

    def body() -> ExitCode:
        if run_id is not None:
            _check_sources(stack=stack, config=None, state_dir=state_dir, catalog=catalog)
            run = _find_run(run_id, state_dir=state_dir, stack=stack, region=region, state_shards=state_shards)
            if json_output:
                sys.stdout.write(orjson.dumps(_run_json(run)).decode() + "\n")
                return ExitCode.OK
            out.print(f"[bold]Run {escape(run.run_id)}[/] of catalog [bold]{escape(run.catalog)}[/]", highlight=False)
            table = Table(show_header=False, box=box.SIMPLE, pad_edge=False)
            table.add_column("what")
            table.add_column("value")
            seconds = duration_seconds(run)
            for name, value in (
                ("status", run.status.value),
                ("mode", run.mode),
                ("source", run.source),
                ("started", f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC"),
                ("finished", f"{run.finished_at:%Y-%m-%d %H:%M:%S} UTC" if run.finished_at else "-"),
                ("duration", f"{seconds:,.1f} s" if seconds is not None else "-"),
                ("message", run.message or "-"),
                *((key, f"{count:,}") for key, count in sorted(run.counts.items())),
            ):
                table.add_row(name, escape(value))
            out.print(table)
            return ExitCode.OK
        with _catalogs(
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
            sys.stdout.write(orjson.dumps([_run_json(run) for run in history]).decode() + "\n")
            return ExitCode.OK
        title = f"The last {len(history)} runs: {label}"
        out.print(_runs_table(history, title=escape(title), with_catalog=stack is not None, run_ids=True))
        out.print(RUNS_LEGEND)
        return ExitCode.OK

    _run(body, json_output=json_output)


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


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What to search for.")],
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    k: Annotated[int, typer.Option("-k", min=1, max=10_000, help="How many results.")] = 5,
    filters: Annotated[list[str] | None, typer.Option("--filter", help="field=value on metadata; repeatable.")] = None,
) -> None:
    """Semantic search on the local index."""

    def body() -> ExitCode:
        settings = _load(config, embedder)
        filters_parsed = _parse_filters(filters or [], settings)
        with _workspace(settings, state_dir, must_exist=True) as workspace:
            stored_model = workspace.state.snapshot().embedding_model
            if stored_model and stored_model != workspace.embedder.model_id:
                raise CommandError(
                    f"the index was built with {stored_model}, not {workspace.embedder.model_id}: "
                    "pass the same --embedder (or re-sync)",
                    ExitCode.FAILED,
                )
            vector = workspace.embedder.embed([text])[0]
            matches = workspace.index.query(vector, k, filters_parsed)
        if json_output:
            sys.stdout.write(orjson.dumps([m.model_dump() for m in matches]).decode() + "\n")
            return ExitCode.OK
        _print_embedder(workspace.embedder)
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

    _run(body, json_output=json_output)


@app.command()
def export(
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    state_dir: StateOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Write the index's content (id, metadata, text hash) as JSON Lines, for audits and backups."""

    def body() -> ExitCode:
        settings = _load(config, embedder)
        count = 0
        with _workspace(settings, state_dir, must_exist=True) as workspace:
            target = output.open("wb") if output else sys.stdout.buffer
            try:
                for entry in workspace.index.export():
                    target.write(
                        orjson.dumps({"id": entry.id, "text_hash": entry.text_hash, "metadata": entry.metadata})
                    )
                    target.write(b"\n")
                    count += 1
            finally:
                if output:
                    target.close()
        if output:
            message = {"exported": count, "output": str(output)}
            if json_output:
                sys.stdout.write(orjson.dumps(message).decode() + "\n")
            else:
                out.print(f"exported {count:,} entries to {output}")
        return ExitCode.OK

    _run(body, json_output=json_output)


@app.command()
def validate(
    catalog: Annotated[Path, typer.Argument(help="Catalog file (.json, .jsonl, .csv, optionally .gz).")],
    config: ConfigOption = None,
    embedder: EmbedderOption = None,
    json_output: JsonOption = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the invalid records (JSON Lines) here.")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Invalid records listed.")] = 50,
) -> None:
    """List the catalog's invalid records without syncing. Exit 3 if there are any."""

    def body() -> ExitCode:
        settings = _load(config, embedder)
        _check_catalog(catalog)
        model_id = build_embedder(settings.embedder).model_id
        differ = CatalogDiff(settings, model_id=model_id)
        with catalog.open("rb") as raw, _progress(not json_output) as progress:
            stream = open_catalog(raw, str(catalog), csv_delimiter=settings.csv.delimiter, id_field=settings.id_field)
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
            }
            sys.stdout.write(orjson.dumps(data).decode() + "\n")
        else:
            out.print(f"{catalog}: {counts.records:,} records, {counts.valid:,} valid, {counts.invalid:,} invalid")
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
        return ExitCode.BAD_INPUT if counts.invalid else ExitCode.OK

    _run(body, json_output=json_output)


@app.command()
def redrive(
    dead_letter_queue: Annotated[str, typer.Option("--dlq-url", help="The dead-letter queue's URL.")],
    target_queue: Annotated[str, typer.Option("--queue-url", help="The queue to put the messages back on.")],
    limit: Annotated[int | None, typer.Option(min=1, help="Move at most this many messages.")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region (default: the environment's).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Put dead-lettered change messages back on their queue (after fixing what made them fail)."""

    def body() -> ExitCode:
        import boto3
        from botocore.exceptions import BotoCoreError, ClientError

        from catalog_sync.adapters.aws.sqs_queue import redrive_dead_letters

        try:
            sqs = boto3.client("sqs", region_name=region)
            moved = redrive_dead_letters(sqs, dead_letter_url=dead_letter_queue, target_url=target_queue, limit=limit)
        except (BotoCoreError, ClientError) as exc:
            raise CommandError(f"SQS: {exc}", ExitCode.FAILED) from exc
        if json_output:
            sys.stdout.write(orjson.dumps({"moved": moved}).decode() + "\n")
        else:
            out.print(f"moved {moved:,} messages back to {target_queue}")
        return ExitCode.OK

    _run(body, json_output=json_output)


def _json_requested(argv: list[str]) -> bool:
    """Whether the command line asks for JSON (before a `--`, after which everything is an argument)."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def _json_error(message: str, code: int) -> None:
    sys.stdout.write(orjson.dumps({"error": message, "exit_code": code}).decode() + "\n")
    sys.stdout.flush()


def main() -> None:
    # Click reports usage errors with exit code 2, which here means "held back by the guard": map them to 3.
    # Under --json every error is also one JSON object on stdout, usage errors and unexpected ones included.
    json_output = _json_requested(sys.argv[1:])
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        err.print("aborted")
        if json_output:
            _json_error("aborted", int(ExitCode.FAILED))
        sys.exit(int(ExitCode.FAILED))
    except Exception as exc:
        # Click's errors (Typer vendors its own Click) know how to show themselves and carry an exit code.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if show is None or not isinstance(exit_code, int):
            if not json_output:
                raise
            traceback.print_exc()
            _json_error(f"internal error: {type(exc).__name__}: {exc}", int(ExitCode.FAILED))
            sys.exit(int(ExitCode.FAILED))
        show()
        code = int(ExitCode.BAD_INPUT) if exit_code == 2 else exit_code
        if json_output:
            format_message = getattr(exc, "format_message", None)
            _json_error(format_message() if callable(format_message) else str(exc), code)
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
