"""Catalog configs for the formats stores export: each `<name>.toml` here is a partial config that a catalog's own
file extends (`preset = "<name>"`); `models.config.load_config` merges them."""
