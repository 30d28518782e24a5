"""How the operator's view is shown: a catalog's status, tables of runs (that fit the terminal), one run."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from catalog_sync.cli.console import out
from catalog_sync.cli.render_sync import print_rejections
from catalog_sync.cli.state import CatalogState, built_with
from catalog_sync.logic.runs import duration_seconds
from catalog_sync.models.changes import RunRecord, RunStatus
from catalog_sync.services.status import CatalogStatus


def status_json(status: CatalogStatus, item: CatalogState, runs_shown: int) -> dict[str, Any]:
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
        "embedder": _index_embedder_json(item),
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


def _index_embedder_json(item: CatalogState) -> dict[str, Any] | None:
    """The embedder the whole index was last built with (None before a complete sync)."""
    if item.index is None:
        return None
    recorded = item.index.embedder.model_dump(mode="json") if item.index.embedder is not None else {}
    index = item.index
    return {"built_with": built_with(index), "model_id": index.embedding_model, "settled": index.settled, **recorded}


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


def runs_table(
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


def print_status(status: CatalogStatus, item: CatalogState, runs_shown: int) -> None:
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
    if item.index is not None:
        unsettled = "" if item.index.settled else " [yellow](part way re-embedded with another since)[/]"
        out.print(f"index built with {escape(built_with(item.index))}{unsettled}", highlight=False)
    if item.writer is not None:
        out.print(f"[cyan]writer at work:[/] {escape(item.writer.describe())}", highlight=False)
    for alert in health.alerts:
        style = LEVEL_STYLES[alert.level.value]
        line = f"  [{style}]{alert.level.value:<8}[/] {escape(alert.code)}: {escape(alert.message)}"
        out.print(line, highlight=False)
    print_rejections(status.rejections, status.rejected)

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
    out.print(runs_table(status.runs[:runs_shown], title="Recent runs"))


def run_json(run: RunRecord) -> dict[str, Any]:
    return {**run.model_dump(mode="json"), "duration_s": duration_seconds(run)}


def print_run(run: RunRecord) -> None:
    """One run, field by field."""
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
