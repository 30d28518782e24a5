from __future__ import annotations

# The suites run AWS adapters under moto, with the same fake credentials as tests/aws; the state-store suites run
# on every store (tests/doubles/state_stores.py).
from tests.aws.conftest import aws_credentials
from tests.doubles.state_stores import make_store

__all__ = ["aws_credentials", "make_store"]
