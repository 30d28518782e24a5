"""Moved to catalog_sync.bootstrap.local (the local composition root); kept for imports not yet updated."""

from catalog_sync.bootstrap.local import DEFAULT_ROOT, LocalWorkspace, interrupted_message, writer_workspace

__all__ = ["DEFAULT_ROOT", "LocalWorkspace", "interrupted_message", "writer_workspace"]
