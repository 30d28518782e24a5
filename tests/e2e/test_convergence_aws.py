"""The convergence property under faults, through the real handlers under moto (see tests/harness/convergence.py).

`make soak` runs the same property on many more examples, with fresh random seeds, and prints the faults.
`CONVERGENCE_EXAMPLES=20` runs fewer examples here (while working on the harness).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.doubles.faults import FaultLog
from tests.harness.convergence import run_example
from tests.harness.convergence_draws import catalog_versions
from tests.harness.convergence_world import World, aws_world

EXAMPLES = int(os.environ.get("CONVERGENCE_EXAMPLES", "200"))
# CONVERGENCE_SHRINK=0: a failing example is reported as found, not shrunk first (shrinking can take many minutes).
PHASES = [phase for phase in Phase if phase is not Phase.shrink or os.environ.get("CONVERGENCE_SHRINK") != "0"]
FAULT_KINDS = [
    "dynamodb throttled",
    "sqs throttled",
    "openai 429",
    "openai 500",
    "pinecone 429",
    "pinecone 500",
    "pinecone 503",
    "consumer crashed before its index write",
    "consumer crashed after its index write",
    "diff invocation failed",
    "diff ran out of time",
    "duplicate delivery",
    "another invocation ran during a desired-state write",
    "another invocation ran during an index write",
    "drop's work ran after a newer drop's diff began",
    "drop overtaken",
    "message dead-lettered",
    "drops within one second: one object written twice",
    "drops within one second: two objects",
]


@pytest.fixture(scope="module")
def fault_log() -> FaultLog:
    return FaultLog()


@pytest.fixture(scope="module")
def converging_world(fault_log: FaultLog) -> Iterator[World]:
    with aws_world(fault_log) as world:
        yield world


@pytest.mark.timeout(1500)  # 200 examples of a whole pipeline: minutes, not the suite's per-test default
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI does not flake; `make soak` explores
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(versions=catalog_versions, data=st.data())
def test_the_index_converges_to_the_last_catalog_whatever_fails(
    converging_world: World, versions: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    run_example(converging_world, versions, data)


def test_every_kind_of_fault_was_delivered(converging_world: World, fault_log: FaultLog) -> None:
    """Runs after the property (same module): each kind of fault reached the code under test, in examples that
    converged (a fault that was queued but never met a request does not count)."""
    if fault_log.examples == 0:
        pytest.skip("the property did not run in this session")
    print(fault_log.report())  # shown with -s (or -rP)
    assert fault_log.failed == 0 and fault_log.converged >= EXAMPLES
    missing = [kind for kind in FAULT_KINDS if not any(seen.startswith(kind) for seen in fault_log.delivered)]
    assert not missing, f"never delivered: {missing}\n{fault_log.report()}"
