"""The operator's view as one self-contained HTML file (`catalog-sync status --html`): no scripts and no external
assets, the CSS inline and the charts inline SVG, so that it can be mailed, archived or opened offline.

Every string that comes from a catalog, a run or a deployment (names, run ids, sources, messages) is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime

from catalog_sync.logic.health import AlertLevel
from catalog_sync.logic.runs import CHANGE_KINDS, changes_by_kind, duration_seconds
from catalog_sync.models.changes import RunRecord, RunStatus
from catalog_sync.services.status import CatalogStatus

KIND_LABELS = {
    "added": "added",
    "text_changed": "modified (re-embedded)",
    "metadata_only": "metadata-only",
    "deleted": "deleted",
}
KIND_COLOURS = {"added": "#2e7d32", "text_changed": "#f9a825", "metadata_only": "#0288d1", "deleted": "#c62828"}
DURATION_COLOUR = "#6a1b9a"
# Marks under the runs that did not succeed (the bars' colours are the kinds of change).
STATUS_COLOURS = {"failed": "#212121", "interrupted": "#ef6c00"}
# A held run changed nothing: a hatched grey outline of what it would have changed, never the kinds' colours.
HELD_COLOUR = "#757575"
HELD_ROW = (
    '<tr class="held" title="held by the deletion guard: nothing changed; its counts are what it would have done">'
)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; margin: 2rem;
       max-width: 1200px; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.2rem; border-bottom: 1px solid #d7dbe3; padding-bottom: .3rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.meta { color: #5b6577; margin-top: 0; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e6e9ef; text-align: left; vertical-align: top; }
th { background: #f4f6fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.score { display: inline-block; min-width: 3.2rem; padding: .05rem .5rem; border-radius: .8rem; color: #fff;
         text-align: center; font-weight: 700; }
.score.good { background: #2e7d32; } .score.fair { background: #ef6c00; } .score.poor { background: #c62828; }
.level { display: inline-block; padding: 0 .45rem; border-radius: .3rem; font-size: .8rem; font-weight: 700;
         text-transform: uppercase; color: #fff; }
.level.critical { background: #c62828; } .level.warning { background: #ef6c00; } .level.info { background: #0277bd; }
.bar { display: inline-block; width: 9rem; height: .7rem; background: #e6e9ef; border-radius: .35rem;
       vertical-align: middle; overflow: hidden; }
.bar span { display: block; height: 100%; background: #3f51b5; }
.none { color: #5b6577; font-style: italic; }
dl.stats { display: grid; grid-template-columns: max-content auto; gap: .15rem 1rem; }
dl.stats dt { color: #5b6577; } dl.stats dd { margin: 0; font-variant-numeric: tabular-nums; }
svg { display: block; margin: .5rem 0 1rem; }
svg text { font: 11px system-ui, sans-serif; fill: #39414f; }
tr.held td.num { color: #757575; font-style: italic; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _anchor(catalog: str) -> str:
    return "catalog-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in catalog)


def _bar(fraction: float) -> str:
    width = max(0.0, min(fraction, 1.0)) * 100
    return f'<span class="bar"><span style="width: {width:.1f}%"></span></span> {fraction:.1%}'


def _nice_ceiling(value: float) -> float:
    """1, 2 or 5 times a power of ten, at least `value` (an axis maximum)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return float(step * magnitude)
    return float(10 * magnitude)


def runs_chart(runs: Sequence[RunRecord], *, min_slot: int = 26, min_plot_width: int = 540) -> str:
    """Inline SVG: the runs, oldest left, each a bar of its changes stacked by kind; their durations as a line
    against the right-hand axis; a mark under each run that failed or was interrupted.

    A run held back by the deletion guard changed nothing: it is a hatched grey outline labelled "held", as tall
    as the changes it would have made (up to the axis, which only the runs that changed something set), with
    those changes in its tooltip."""
    ordered = list(reversed(runs))  # runs come newest first
    if not ordered:
        return '<p class="none">no runs yet</p>'
    left, right, top, plot_h, bottom = 56, 64, 52, 170, 34
    plot_w = max(min_slot * len(ordered), min_plot_width)
    slot = plot_w / len(ordered)
    bar = min(slot * 0.7, 40.0)
    width = left + right + plot_w
    height = top + plot_h + bottom
    totals = [sum(changes_by_kind(run).values()) for run in ordered]
    durations = [duration_seconds(run) for run in ordered]
    held = [run.status is RunStatus.HELD for run in ordered]
    # A held run's would-be deletions (a wiped catalog: the whole index) must not flatten the others' bars.
    max_changes = _nice_ceiling(max((t for t, h in zip(totals, held, strict=True) if not h), default=0))
    hatch = f"held-{_anchor(ordered[0].catalog)}"
    max_duration = _nice_ceiling(max((d for d in durations if d is not None), default=0.0))
    base = top + plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="changes by kind and duration of the last runs">',
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#9aa3b2"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#9aa3b2"/>',
        f'<line x1="{width - right}" y1="{top}" x2="{width - right}" y2="{base}" stroke="{DURATION_COLOUR}" '
        'stroke-opacity="0.5"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{max_changes:,.0f}</text>',
        f'<text x="{left - 6}" y="{base + 4}" text-anchor="end">0</text>',
        f'<text x="{width - right + 6}" y="{top + 4}">{max_duration:,.0f} s</text>',
        f'<text x="{width - right + 6}" y="{base + 4}">0 s</text>',
        f'<defs><pattern id="{_e(hatch)}" width="6" height="6" patternUnits="userSpaceOnUse" '
        f'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f1f1f1"/>'
        f'<line x1="0" y1="0" x2="0" y2="6" stroke="#bdbdbd" stroke-width="2"/></pattern></defs>',
    ]
    # Legend along the top.
    x = left
    for kind in CHANGE_KINDS:
        parts.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{KIND_COLOURS[kind]}"/>')
        parts.append(f'<text x="{x + 14}" y="17">{_e(KIND_LABELS[kind])}</text>')
        x += 14 + 7 * len(KIND_LABELS[kind]) + 14
    parts.append(f'<line x1="{x}" y1="13" x2="{x + 14}" y2="13" stroke="{DURATION_COLOUR}" stroke-width="2"/>')
    parts.append(f'<text x="{x + 18}" y="17">duration</text>')
    x = left
    for status, colour in STATUS_COLOURS.items():
        parts.append(f'<rect x="{x}" y="28" width="10" height="5" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="34">{status} run</text>')
        x += 14 + 7 * len(f"{status} run") + 14
    parts.append(
        f'<rect x="{x}" y="25" width="10" height="10" fill="url(#{_e(hatch)})" stroke="{HELD_COLOUR}" '
        'stroke-dasharray="2 1"/>'
    )
    parts.append(f'<text x="{x + 14}" y="34">held: nothing changed (outline: what it would have done)</text>')

    points: list[str] = []
    for i, run in enumerate(ordered):
        x0 = left + i * slot + (slot - bar) / 2
        counts = changes_by_kind(run)
        seconds = durations[i]
        if held[i]:
            would = ", ".join(f"{KIND_LABELS[kind]} {counts[kind]:,}" for kind in CHANGE_KINDS if counts[kind])
            label = f"{run.run_id} · held by the deletion guard, nothing changed · it would have: {would or 'nothing'}"
            label += f" · {run.message}" if run.message else ""
        else:
            label = f"{run.run_id} · {run.status.value} · {run.mode} · " + ", ".join(
                f"{KIND_LABELS[kind]} {counts[kind]:,}" for kind in CHANGE_KINDS
            )
        label += f" · {seconds:,.1f} s" if seconds is not None else ""
        parts.append(f'<g class="run{" held" if held[i] else ""}"><title>{_e(label)}</title>')
        if held[i]:
            h = max(min(totals[i] / max_changes, 1.0) * plot_h, 6.0)
            parts.append(
                f'<rect x="{x0:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="url(#{_e(hatch)})" '
                f'stroke="{HELD_COLOUR}" stroke-dasharray="3 2"/>'
            )
            # "held", and over it the deletions it would have made: the guard's reason, readable without hovering.
            lines = ["held", *([f"−{counts['deleted']:,}"] if counts["deleted"] else [])]
            for n, text in enumerate(reversed(lines)):
                parts.append(
                    f'<text x="{x0 + bar / 2:.1f}" y="{base - h - 4 - 13 * n:.1f}" text-anchor="middle" '
                    f'font-weight="bold" style="fill: {HELD_COLOUR}">{_e(text)}</text>'
                )
        y = float(base)
        for kind in CHANGE_KINDS if not held[i] else ():
            if not counts[kind]:
                continue
            h = counts[kind] / max_changes * plot_h
            y -= h
            parts.append(
                f'<rect x="{x0:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{KIND_COLOURS[kind]}"/>'
            )
        mark = STATUS_COLOURS.get(run.status.value)
        if mark:
            parts.append(f'<rect x="{x0:.1f}" y="{base + 4}" width="{bar:.1f}" height="5" fill="{mark}"/>')
        parts.append("</g>")
        if seconds is not None:
            points.append(f"{x0 + bar / 2:.1f},{base - seconds / max_duration * plot_h:.1f}")
        if i % max(1, len(ordered) // 10) == 0:
            parts.append(f'<text x="{x0 + bar / 2:.1f}" y="{base + 22}" text-anchor="middle">{run.seq}</text>')
    if points:
        parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{DURATION_COLOUR}" stroke-width="2"/>')
        for point in points:
            cx, cy = point.split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{DURATION_COLOUR}"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def _alerts_table(rows: Sequence[tuple[str, AlertLevel, str, str]], *, with_catalog: bool) -> str:
    if not rows:
        return '<p class="none">no open alerts</p>'
    head = "<tr><th>level</th>" + ("<th>catalog</th>" if with_catalog else "") + "<th>alert</th><th>what</th></tr>"
    body = [
        f'<tr><td><span class="level {level.value}">{level.value}</span></td>'
        + (f'<td><a href="#{_e(_anchor(catalog))}">{_e(catalog)}</a></td>' if with_catalog else "")
        + f"<td>{_e(code)}</td><td>{_e(message)}</td></tr>"
        for catalog, level, code, message in rows
    ]
    return f'<table class="alerts">{head}{"".join(body)}</table>'


def _runs_table(runs: Sequence[RunRecord], limit: int) -> str:
    if not runs:
        return ""
    head = (
        "<tr><th>run</th><th>started (UTC)</th><th>mode</th><th>status</th>"
        + "".join(f'<th class="num">{_e(KIND_LABELS[kind])}</th>' for kind in CHANGE_KINDS)
        + '<th class="num">invalid</th><th class="num">embedded</th><th class="num">cache hits</th>'
        '<th class="num">seconds</th><th>source</th><th>message</th></tr>'
    )
    rows = []
    for run in runs[:limit]:
        counts = changes_by_kind(run)
        seconds = duration_seconds(run)
        rows.append(
            (HELD_ROW if run.status is RunStatus.HELD else "<tr>")
            + f"<td>{_e(run.run_id)}</td><td>{run.started_at:%Y-%m-%d %H:%M:%S}</td><td>{_e(run.mode)}</td>"
            f"<td>{_e(run.status.value)}</td>"
            + "".join(f'<td class="num">{counts[kind]:,}</td>' for kind in CHANGE_KINDS)
            + f'<td class="num">{run.counts.get("invalid", 0):,}</td>'
            f'<td class="num">{run.counts.get("applied_embedded", 0):,}</td>'
            f'<td class="num">{run.counts.get("applied_cache_hits", 0):,}</td>'
            f'<td class="num">{_num(seconds)}</td><td>{_e(run.source)}</td><td>{_e(run.message or "")}</td></tr>'
        )
    return f'<table class="runs">{head}{"".join(rows)}</table>'


def _catalog_section(status: CatalogStatus, runs_shown: int) -> str:
    health = status.health
    stats = status.statistics
    components = health.components
    facts = [
        ("products", f"{status.products:,}"),
        ("in the index at their desired version", f"{status.synced:,}"),
        ("pending", f"{status.pending:,}"),
        ("deletions pending", f"{status.deleting:,}"),
    ]
    if status.vectors_in_index is not None:
        facts.append(("vectors in the index", f"{status.vectors_in_index:,}"))
    facts += [
        ("last success", f"{health.last_success_at:%Y-%m-%d %H:%M} UTC" if health.last_success_at else "never"),
        ("hours since", _num(health.hours_since_success)),
        ("runs in the window", f"{stats.runs:,} over {_num(stats.window_hours)} h"),
        ("success rate", _pct(stats.success_rate)),
        ("average duration", f"{_num(stats.average_duration_s)} s"),
        ("products synced per hour", _num(stats.products_synced_per_hour)),
        ("embedding cache hit rate", _pct(stats.cache_hit_rate)),
        ("invalid share (last run)", _pct(health.invalid_share)),
    ]
    alerts = [(status.catalog, a.level, a.code, a.message) for a in health.alerts]
    return "\n".join(
        [
            f'<section class="catalog" id="{_e(_anchor(status.catalog))}">',
            f'<h2>{_e(status.catalog)} <span class="score {health.grade}">{health.score:.1f}</span></h2>',
            '<table class="components"><tr><th>component</th><th>score</th></tr>'
            f"<tr><td>coverage</td><td>{_bar(components.coverage)}</td></tr>"
            f"<tr><td>freshness</td><td>{_bar(components.freshness)}</td></tr>"
            f"<tr><td>quality</td><td>{_bar(components.quality)}</td></tr></table>",
            "<h3>Alerts</h3>",
            _alerts_table(alerts, with_catalog=False),
            "<h3>Statistics</h3>",
            '<dl class="stats">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>",
            f"<h3>The last {len(status.runs)} runs</h3>",
            runs_chart(status.runs),
            _runs_table(status.runs, runs_shown),
            "</section>",
        ]
    )


def render_report(
    statuses: Sequence[CatalogStatus], *, source: str, generated_at: datetime, runs_shown: int = 30
) -> str:
    """The whole page: an overview of every catalog, the open alerts, then one section per catalog."""
    overview_rows = "".join(
        f'<tr><td><a href="#{_e(_anchor(s.catalog))}">{_e(s.catalog)}</a></td>'
        f'<td><span class="score {s.health.grade}">{s.health.score:.1f}</span></td>'
        f'<td class="num">{_pct(s.health.components.coverage)}</td>'
        f'<td class="num">{_pct(s.health.components.freshness)}</td>'
        f'<td class="num">{_pct(s.health.components.quality)}</td>'
        f'<td class="num">{s.products:,}</td><td class="num">{s.pending:,}</td>'
        f'<td class="num">{len(s.health.alerts)}</td></tr>'
        for s in statuses
    )
    overview = (
        '<table class="overview"><tr><th>catalog</th><th>health</th><th class="num">coverage</th>'
        '<th class="num">freshness</th><th class="num">quality</th><th class="num">products</th>'
        f'<th class="num">pending</th><th class="num">alerts</th></tr>{overview_rows}</table>'
        if statuses
        else '<p class="none">no catalogs</p>'
    )
    open_alerts = sorted(
        ((s.catalog, a.level, a.code, a.message) for s in statuses for a in s.health.alerts),
        key=lambda row: -row[1].rank,
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>catalog-sync health</title>",
            f"<style>{CSS}</style></head><body>",
            "<h1>catalog-sync health</h1>",
            f'<p class="meta">{_e(source)} · generated {generated_at:%Y-%m-%d %H:%M:%S} UTC</p>',
            "<h2>Catalogs</h2>",
            overview,
            "<h2>Open alerts</h2>",
            _alerts_table(open_alerts, with_catalog=True),
            *(_catalog_section(status, runs_shown) for status in statuses),
            "</body></html>",
            "",
        ]
    )
