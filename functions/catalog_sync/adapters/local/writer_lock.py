"""One writer at a time per catalog's local state: a file lock beside the state, and a record of who holds it.

`<root>/<catalog>/writer.lock` is locked (flock on Linux and macOS, through `filelock`) by every command that
writes the catalog's state or index (`sync`, `watch`), for as long as it runs. The operating system releases the
lock when its process ends, however it ends, so a killed writer never blocks the next one.

`<root>/<catalog>/writer.json` says who holds it (pid, host, command, start time, current run), for the message a
refused writer prints and for readers that want to say a sync is in progress. It is written after the lock is
taken and removed before it is released: a record found by the next holder was left by a writer that died.
It is a file of its own because a process waiting for the lock opens (and may truncate) the lock file.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, ValidationError

LOCK_FILE = "writer.lock"
HOLDER_FILE = "writer.json"


class Holder(BaseModel):
    """Who holds (or held) a catalog's writer lock."""

    model_config = ConfigDict(frozen=True)

    pid: int
    host: str
    command: str
    started_at: datetime
    run_id: str | None = None

    def describe(self) -> str:
        run = f", run {self.run_id}" if self.run_id else ""
        return f"pid {self.pid} on {self.host} (`{self.command}`), since {self.started_at:%Y-%m-%d %H:%M:%S} UTC{run}"

    def alive(self) -> bool | None:
        """Whether its process still runs; None when that cannot be told from here (another host)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # a process of another user: it exists
            return True
        return True


class WriterBusy(Exception):
    """Another process holds the catalog's writer lock."""

    def __init__(self, directory: Path, holder: Holder | None, waited: float) -> None:
        who = holder.describe() if holder is not None else "a process that has not said who it is yet"
        waited_text = f" after waiting {waited:g} s" if waited > 0 else ""
        super().__init__(
            f"another writer holds the state of catalog {directory.name!r} ({directory}): {who}. Nothing was "
            f"changed{waited_text}; wait for it to finish, stop it, or pass --wait SECONDS to queue behind it"
        )
        self.directory = directory
        self.holder = holder


def read_holder(directory: Path) -> Holder | None:
    """The holder record in a catalog's directory, or None (none, or one that cannot be read)."""
    try:
        return Holder.model_validate_json((directory / HOLDER_FILE).read_bytes())
    except (OSError, ValidationError):
        return None


def current_writer(directory: Path) -> Holder | None:
    """The writer at work on a catalog right now, as far as a reader can tell without taking the lock (taking it,
    even briefly, could turn away a writer that starts at that moment): a holder record whose process runs."""
    holder = read_holder(directory)
    if holder is None or holder.alive() is False:
        return None
    return holder


def command_line() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "catalog-sync"
    if name in ("__main__.py", "cli.py"):
        name = "catalog-sync"
    return " ".join([name, *sys.argv[1:]])


class WriterLock:
    """The writer lock of one catalog's directory. Not reentrant: one holder per process and directory."""

    def __init__(self, directory: Path, *, command: str | None = None) -> None:
        self.directory = directory
        self.command = command or command_line()
        self._lock = FileLock(str(directory / LOCK_FILE))
        self._holder: Holder | None = None
        # The record a writer that died left behind, found when this one took the lock.
        self.left_behind: Holder | None = None

    def acquire(self, *, wait: float = 0.0, on_wait: Callable[[Holder | None], None] | None = None) -> None:
        """Take the lock at once, or within `wait` seconds; WriterBusy if another writer keeps it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if wait <= 0:
                raise WriterBusy(self.directory, read_holder(self.directory), 0.0) from None
            if on_wait is not None:
                on_wait(read_holder(self.directory))
            try:
                self._lock.acquire(timeout=wait)
            except Timeout:
                raise WriterBusy(self.directory, read_holder(self.directory), wait) from None
        try:
            self.left_behind = read_holder(self.directory)
            self._holder = Holder(
                pid=os.getpid(), host=socket.gethostname(), command=self.command, started_at=datetime.now(UTC)
            )
            self._write(self._holder)
        except BaseException:
            self._lock.release()
            raise

    def record_run(self, run_id: str) -> None:
        """Say which run this writer is on (shown to a writer it turns away)."""
        if self._holder is not None:
            self._holder = self._holder.model_copy(update={"run_id": run_id})
            self._write(self._holder)

    def release(self) -> None:
        if self._holder is None:
            return
        self._holder = None
        try:
            (self.directory / HOLDER_FILE).unlink(missing_ok=True)
        finally:
            self._lock.release()

    def _write(self, holder: Holder) -> None:
        # Written aside and renamed: a reader never sees half a record.
        temporary = self.directory / f".{HOLDER_FILE}.{os.getpid()}"
        temporary.write_bytes(holder.model_dump_json().encode())
        os.replace(temporary, self.directory / HOLDER_FILE)

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()
