"""Where the command line writes: Rich consoles for a person, one JSON object per line for a machine."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from catalog_sync.services.sync_report import ProgressCallback

out = Console()
err = Console(stderr=True, soft_wrap=True)


def write_json(data: Any) -> None:
    """One JSON value on one line of stdout, flushed at once: a reader of `watch --json` sees each event as it
    happens, and an error's JSON is out before the process exits."""
    sys.stdout.write(orjson.dumps(data).decode() + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bars(enabled: bool) -> Iterator[ProgressCallback | None]:
    """A progress callback drawing bars on stderr (gone once done), or None when disabled (under --json)."""
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
