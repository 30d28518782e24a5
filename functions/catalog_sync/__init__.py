"""catalog-sync."""
