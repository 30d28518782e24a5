"""The composition roots: the only places that choose adapters and build services (aws: the deployed
functions; local: the CLI's embedded default)."""
