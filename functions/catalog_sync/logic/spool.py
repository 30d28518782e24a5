"""An append-only collection of pydantic models that keeps memory bounded.

The first `memory_limit` items stay in memory; the rest are written to a temporary file as JSON Lines and
read back, in order, when iterated. A diff of a million-product catalog therefore holds its changes on disk,
not in memory, while a small diff never touches the disk.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

DEFAULT_MEMORY_LIMIT = 20_000


class Spool(Generic[M]):
    def __init__(self, model: type[M], *, memory_limit: int = DEFAULT_MEMORY_LIMIT, directory: Path | None = None):
        self._model = model
        self._memory_limit = memory_limit
        self._directory = directory
        self._memory: list[M] = []
        self._file: IO[bytes] | None = None
        self._spilled = 0

    def append(self, item: M) -> None:
        if len(self._memory) < self._memory_limit:
            self._memory.append(item)
            return
        if self._file is None:
            self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the spool
                prefix="catalog-sync-spool-", suffix=".jsonl", dir=self._directory
            )
        self._file.write(item.model_dump_json().encode() + b"\n")
        self._spilled += 1

    def __len__(self) -> int:
        return len(self._memory) + self._spilled

    def __bool__(self) -> bool:
        return len(self) > 0

    @property
    def spilled(self) -> int:
        return self._spilled

    def __iter__(self) -> Iterator[M]:
        yield from self._memory
        if self._file is None:
            return
        self._file.flush()
        validate = self._model.model_validate_json
        with open(self._file.name, "rb") as spilled:
            for line in spilled:
                yield validate(line)

    def retain(self, keep: Callable[[M], bool]) -> None:
        """Keep only the items `keep` accepts, in order (one pass; memory stays bounded)."""
        kept_memory, spilled_file = self._memory, self._file
        self._memory, self._file, self._spilled = [], None, 0
        for item in kept_memory:
            if keep(item):
                self.append(item)
        if spilled_file is None:
            return
        spilled_file.flush()
        validate = self._model.model_validate_json
        with open(spilled_file.name, "rb") as spilled:
            for line in spilled:
                item = validate(line)
                if keep(item):
                    self.append(item)
        spilled_file.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
