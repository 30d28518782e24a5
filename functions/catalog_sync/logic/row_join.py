"""Rows of one key joined wherever they are in the file ([source] sorted = false), in bounded memory.

WooCommerce orders its export by ID, so a variation added later sits far from its parent. The rows are read in
file order and given back ordered by (where their key was first seen, their own position): each key's rows
together, the groups in order of first appearance, each group's rows in file order. What `group_rows` then reads
is a sorted file, with every row's original position kept for the messages.

Up to `run_bytes` of rows are sorted in memory, held as bytes (a JSON Lines row as its line, parsed again when given
back; any other row pickled); beyond that, each sorted run is written to an anonymous temporary file (in the
system's temp directory, removed when closed) and the runs are merged, one row of each held at a time. Only the
first position of each key stays in memory, as `group_rows` keeps it too.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from catalog_sync.logic.validation import InvalidRecord

Row = tuple[int, dict[str, Any], bytes | None]
# (first position of the row's key, the row's position, the row's record and line, pickled)
_Entry = tuple[int, int, bytes]

DEFAULT_RUN_BYTES = 16 * 1024 * 1024


def _entry_key(entry: _Entry) -> tuple[int, int]:
    return entry[0], entry[1]


class RowJoin:
    """Collects rows, then gives them back grouped by key in order of first appearance. Use as a context manager
    (or call close): its temporary files are removed on close."""

    def __init__(
        self,
        key_of: Callable[[dict[str, Any]], str],
        *,
        parse: Callable[[int, bytes], dict[str, Any] | None] | None = None,
        run_bytes: int | None = None,
    ) -> None:
        self._key_of = key_of
        # With a parser, a row read from a line is held as its line alone and parsed again when given back.
        self._parse = parse
        self._run_bytes = run_bytes if run_bytes is not None else DEFAULT_RUN_BYTES
        self._first: dict[str, int] = {}
        self._run: list[_Entry] = []
        self._run_size = 0
        self._files: list[IO[bytes]] = []

    def __enter__(self) -> RowJoin:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def spilled_runs(self) -> int:
        return len(self._files)

    def add(self, position: int, record: dict[str, Any], line: bytes | None) -> None:
        try:
            first = self._first.setdefault(self._key_of(record), position)
        except InvalidRecord:  # a row without a key stays where it is; group_rows reports it
            first = position
        # Held pickled: a run costs its bytes, not the several times more its parsed objects would.
        if line is not None and self._parse is not None:
            blob = b"L" + line
        else:
            blob = b"P" + pickle.dumps((record, line), protocol=pickle.HIGHEST_PROTOCOL)
        self._run.append((first, position, blob))
        self._run_size += len(blob) + 64
        if self._run_size >= self._run_bytes:
            self._spill()

    def extend(self, rows: Iterable[Row]) -> None:
        for position, record, line in rows:
            self.add(position, record, line)

    def _spill(self) -> None:
        self._run.sort(key=_entry_key)
        handle = tempfile.TemporaryFile(prefix="catalog-sync-rows-")  # noqa: SIM115 - closed by close()
        self._files.append(handle)
        pickler = pickle.Pickler(handle, protocol=pickle.HIGHEST_PROTOCOL)
        for entry in self._run:
            pickler.dump(entry)
            pickler.clear_memo()
        handle.flush()
        self._run = []
        self._run_size = 0

    @staticmethod
    def _read(handle: IO[bytes]) -> Iterator[_Entry]:
        handle.seek(0)
        unpickler = pickle.Unpickler(handle)  # our own file, written just now
        while True:
            try:
                yield unpickler.load()
            except EOFError:
                return

    def rows(self) -> Iterator[Row]:
        """Every row added, grouped by key, the groups in order of their first row."""
        self._run.sort(key=_entry_key)
        if not self._files:
            runs: list[Iterable[_Entry]] = [self._run]
        else:
            runs = [*(self._read(handle) for handle in self._files), self._run]
        for _, position, blob in heapq.merge(*runs, key=_entry_key):
            if blob[:1] == b"P":
                record, line = pickle.loads(blob[1:])  # our own bytes, pickled just now
                yield position, record, line
            else:
                assert self._parse is not None
                line = blob[1:]
                parsed = self._parse(position, line)
                assert parsed is not None  # it parsed to a record before
                yield position, parsed, line

    def close(self) -> None:
        for handle in self._files:
            handle.close()
        self._files.clear()
        self._run = []
