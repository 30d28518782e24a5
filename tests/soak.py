"""The convergence property on many examples, with fresh random seeds: `make soak` (SOAK_EXAMPLES=2000).

Runs the same scenarios as tests/e2e/test_convergence_aws.py (see tests/e2e/convergence.py) and prints the faults
injected and survived, by kind. Exits non-zero on the first example that does not converge, after hypothesis has
shrunk it and printed its draws.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import conftest  # noqa: E402, F401  (installs the DynamoDB transaction double)
from tests.doubles.faults import FaultLog  # noqa: E402
from tests.e2e.convergence import Scenario, aws_world, catalog_versions, check_converged  # noqa: E402


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the report below is printed for what ran so far


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    args = parser.parse_args()
    log = FaultLog()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, aws_world(log, Path(tmp)) as world:

        @settings(
            max_examples=args.examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(versions=catalog_versions, data=st.data())
        def soak(versions: list[list[dict[str, object]]], data: st.DataObject) -> None:
            scenario = Scenario(world, data, versions)
            try:
                scenario.run()
                check_converged(world, versions, overtaken=scenario.overtaken)
            except Exception:
                log.example_failed(scenario.faults)
                raise
            log.example_converged(scenario.faults)
            if log.converged % 100 == 0:
                elapsed = time.perf_counter() - started
                faults = sum(log.injected.values())
                print(f"  {log.converged:,} examples converged, {faults:,} faults, {elapsed:,.0f} s", flush=True)

        if args.seed is not None:
            from hypothesis import seed

            soak = seed(args.seed)(soak)
        failed = False
        try:
            soak()
        except KeyboardInterrupt:
            print("interrupted")
        except Exception:
            failed = True
            raise
        finally:
            elapsed = time.perf_counter() - started
            print(
                f"\nconvergence soak: {elapsed:,.0f} s; the SDKs' retries backed off {world.slept:,.0f} s (test clock)"
            )
            print(log.report())
            if failed:
                print("an example did not converge (above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
