"""The convergence property under faults, through the real handlers under moto (see tests/e2e/convergence.py).

`make soak` runs the same property on many more examples, with fresh random seeds, and prints the faults.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.doubles.faults import FaultLog
from tests.e2e.convergence import Scenario, World, aws_world, catalog_versions, check_converged, expected_index

EXAMPLES = 200


@pytest.fixture(scope="module")
def fault_log() -> FaultLog:
    return FaultLog()


@pytest.fixture(scope="module")
def converging_world(tmp_path_factory: pytest.TempPathFactory, fault_log: FaultLog) -> Iterator[World]:
    with aws_world(fault_log, tmp_path_factory.mktemp("convergence")) as world:
        yield world


def run_example(world: World, versions: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    scenario = Scenario(world, data, versions)
    try:
        scenario.run()
        check_converged(world, versions, overtaken=scenario.overtaken)
    except Exception:
        world.log.example_failed(scenario.faults)
        raise
    world.log.example_converged(scenario.faults)


@pytest.mark.timeout(1200)  # 200 examples of a whole pipeline: minutes, not the suite's per-test default
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI does not flake; `make soak` explores
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(versions=catalog_versions, data=st.data())
def test_the_index_converges_to_the_last_catalog_whatever_fails(
    converging_world: World, versions: list[list[dict[str, Any]]], data: st.DataObject
) -> None:
    run_example(converging_world, versions, data)


def test_the_faults_were_injected_and_survived(converging_world: World, fault_log: FaultLog) -> None:
    """Runs after the property (same module): every kind of fault occurred, and every example converged."""
    if fault_log.converged + fault_log.failed == 0:
        pytest.skip("the property did not run in this session")
    kinds = {kind.split(" ")[0] for kind in fault_log.injected}
    assert {"dynamodb", "sqs", "openai", "pinecone", "consumer", "diff", "duplicate", "another"} <= kinds, kinds
    assert fault_log.failed == 0 and fault_log.converged >= EXAMPLES
    assert sum(fault_log.survived.values()) == sum(fault_log.injected.values())


def test_the_oracle() -> None:
    v1 = [{"sku": "a", "price": 1.0}, {"sku": " b", "price": 1.0}, {"sku": "A", "price": 1.0}]
    v2 = [{"sku": "a", "price": "ask us"}, {"sku": "b ", "price": 2.0}, {"sku": "b", "price": 3.0}]
    v3 = [{"sku": "b", "price": "ask us"}, {"sku": "c", "price": "ask us"}, {"sku": "a", "price": 4.0}]
    # v2: a is invalid (keeps v1), the first b wins, A is deleted.
    assert expected_index([v1, v2]) == {"a": v1[0], "b": v2[1]}
    # v3: b keeps v2's version, c was never valid, a changes.
    assert expected_index([v1, v2, v3]) == {"a": v3[2], "b": v2[1]}
