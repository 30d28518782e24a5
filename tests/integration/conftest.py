from __future__ import annotations

# The state-store factory (SQLite, and DynamoDB under moto), for the tests of what is built on the store contract.
from tests.doubles.state_stores import make_store  # noqa: F401
