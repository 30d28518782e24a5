"""How a sync or its plan is shown: Rich text for a person, a JSON object for a machine."""

from __future__ import annotations

from itertools import islice
from typing import Any

from rich.markup import escape
from rich.table import Table

from catalog_sync.cli.console import out
from catalog_sync.cli.errors import ExitCode
from catalog_sync.cli.render_checks import config_check_json, print_config_problems
from catalog_sync.logic.diff import DiffResult
from catalog_sync.models.changes import Change, ChangeKind
from catalog_sync.models.index import IndexRejection
from catalog_sync.ports import Embedder
from catalog_sync.services.sync_report import SyncReport

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


def report_json(report: SyncReport, *, include_changes: bool = True) -> dict[str, Any]:
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
        **config_check_json(report.diff.field_check),
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


def print_embedder(embedder: Embedder) -> None:
    # The hashing embedder is for tests: say so wherever it is in use.
    colour = "bold red" if embedder.model_id.startswith("catalog-sync/hashing") else "dim"
    out.print(f"[{colour}]embedder: {embedder.label} ({embedder.model_id})[/]", highlight=False)


def print_report(report: SyncReport, limit: int) -> None:
    print_config_problems(report.diff.field_check)
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
    print_rejections(report.applied.rejected, len(report.applied.rejected))


def print_rejections(rejections: list[IndexRejection], total: int) -> None:
    """Products the index refused: they stay pending, each with the index's reason."""
    if not rejections:
        return
    out.print(f"[yellow]{total:,} products refused by the index[/] (they stay pending):")
    for rejection in rejections[:10]:
        out.print(f"  {escape(rejection.product_id)} ({rejection.action}): {escape(rejection.reason)}", highlight=False)
    if total > 10:
        out.print(f"  [dim]... and {total - 10:,} more (use --json)[/]")


def exit_for(report: SyncReport) -> ExitCode:
    if report.guard.held:
        return ExitCode.HELD
    if report.failed:
        return ExitCode.FAILED
    return ExitCode.OK
