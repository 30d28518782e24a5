"""The HTML report's run chart, read as SVG: what each run's group draws."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from catalog_sync.cli.html_report import runs_chart
from catalog_sync.models.changes import RunRecord, RunStatus

SVG = "{http://www.w3.org/2000/svg}"
DELETED_RED = "#c62828"
STARTED = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


def run(seq: int, status: RunStatus, message: str | None = None, **counts: int) -> RunRecord:
    started = STARTED + timedelta(minutes=seq)
    return RunRecord(
        run_id=f"run-{seq}",
        seq=seq,
        catalog="shop",
        mode="incremental",
        source="catalog.jsonl",
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=2),
        counts=counts,
        message=message,
    )


def groups(svg: str) -> dict[str, ET.Element]:
    """Each run's group, by the run id its tooltip begins with."""
    root = ET.fromstring(svg)
    found = {}
    for group in root.iter(f"{SVG}g"):
        title = group.find(f"{SVG}title")
        assert title is not None and title.text
        found[title.text.split(" ", 1)[0]] = group
    return found


def test_a_held_run_is_drawn_held_not_as_deletions():
    runs = [
        run(3, RunStatus.SUCCEEDED, added=100),
        run(2, RunStatus.HELD, "it would delete 98% of the index", deleted=2_500, added=10),
        run(1, RunStatus.SUCCEEDED, added=3_000, deleted=40),
    ]  # newest first, as the state gives them
    svg = runs_chart(runs)
    drawn = groups(svg)
    held = drawn["run-2"]
    rects = held.findall(f"{SVG}rect")
    # No bar in a change kind's colour: the held run changed nothing.
    assert all(not rect.get("fill", "").startswith("#") for rect in rects), [r.attrib for r in rects]
    (outline,) = rects
    assert outline.get("fill", "").startswith("url(#") and outline.get("stroke-dasharray")
    # As tall as the 2,510 changes it would have made, on the axis the other runs set (0 to 5,000 over 170 px).
    assert abs(float(outline.get("height", 0)) - 2_510 / 5_000 * 170) < 0.5
    labels = [text.text for text in held.findall(f"{SVG}text")]
    assert labels == ["−2,500", "held"]
    title = held.findtext(f"{SVG}title") or ""
    assert "held by the deletion guard, nothing changed" in title
    assert "deleted 2,500" in title and "added 10" in title and "it would delete 98% of the index" in title
    # The run that did delete draws its deletions in red; the legend names the held mark.
    assert any(rect.get("fill") == DELETED_RED for rect in drawn["run-1"].findall(f"{SVG}rect"))
    assert "held: nothing changed" in svg


def test_a_held_run_that_would_wipe_the_index_does_not_flatten_the_others():
    runs = [run(2, RunStatus.HELD, deleted=1_000_000), run(1, RunStatus.SUCCEEDED, added=300)]
    svg = runs_chart(runs)
    root = ET.fromstring(svg)
    axis = [text.text for text in root.findall(f"{SVG}text")]
    assert "500" in axis and "1,000,000" not in axis  # the axis is the runs that changed something
    (outline,) = groups(svg)["run-2"].findall(f"{SVG}rect")
    assert float(outline.get("height", 0)) == 170.0  # capped at the plot's height
    (bar,) = groups(svg)["run-1"].findall(f"{SVG}rect")
    assert abs(float(bar.get("height", 0)) - 300 / 500 * 170) < 0.5


def test_failed_and_interrupted_runs_keep_their_bars_and_get_a_mark():
    runs = [run(2, RunStatus.INTERRUPTED, added=50), run(1, RunStatus.FAILED, deleted=20)]
    drawn = groups(runs_chart(runs))
    interrupted = [rect.get("fill") for rect in drawn["run-2"].findall(f"{SVG}rect")]
    failed = [rect.get("fill") for rect in drawn["run-1"].findall(f"{SVG}rect")]
    assert interrupted == ["#2e7d32", "#ef6c00"] and failed == [DELETED_RED, "#212121"]
