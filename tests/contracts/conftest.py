from __future__ import annotations

# The suites run AWS adapters under moto, with the same fake credentials as tests/aws.
from tests.aws.conftest import aws_credentials

__all__ = ["aws_credentials"]
