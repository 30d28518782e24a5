"""A catalog file, or a folder of drops whose newest catalog file counts: what `catalog-sync watch` polls."""

from __future__ import annotations

from pathlib import Path

from catalog_sync.adapters.local.files import FileCatalogSource
from catalog_sync.formats.detection import CATALOG_SUFFIXES
from catalog_sync.ports import CatalogDrop


def newest_catalog(path: Path) -> Path | None:
    """The file itself, or the newest catalog file in a folder of drops; None while there is none."""
    try:
        if path.is_file():
            return path
        candidates = [
            (p.stat().st_mtime_ns, p.name, p)
            for p in path.iterdir()
            if p.is_file() and p.name.lower().endswith(CATALOG_SUFFIXES)
        ]
    except OSError:  # the file or a drop vanished between looks: try again at the next poll
        return None
    return max(candidates)[2] if candidates else None


class LocalDropFolder:
    """A file or a folder of drops; a drop's signature is its path, modification time and size."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def newest(self) -> CatalogDrop | None:
        catalog = newest_catalog(self.path)
        if catalog is None:
            return None
        try:
            stat = catalog.stat()
        except FileNotFoundError:  # replaced between listing and stat
            return None
        return CatalogDrop(
            location=str(catalog),
            name=catalog.name,
            signature=(str(catalog), stat.st_mtime_ns, stat.st_size),
            source=FileCatalogSource(catalog),
        )
