"""The convergence property on many examples, with fresh random seeds: `make soak` (SOAK_EXAMPLES=2000).

Runs the scenarios of tests/e2e/test_convergence_aws.py (see tests/harness/convergence.py) and prints the examples
run, the faults delivered by kind and the failures. It stops at the first example that does not converge and
prints it (hypothesis's draws; `--shrink` shrinks it first). Exit status: 0 when every example converged, 1 when
one did not, 2 when stopped (Ctrl+C, SIGTERM from `timeout`) before the examples asked for ran; the report is
printed in every case.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "functions")]

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import conftest  # noqa: E402, F401  (installs the DynamoDB transaction double)
from tests.doubles.faults import FaultLog  # noqa: E402
from tests.harness.convergence import run_example  # noqa: E402
from tests.harness.convergence_draws import catalog_versions  # noqa: E402
from tests.harness.convergence_world import aws_world  # noqa: E402


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # the report below is printed for what ran so far


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: a random one)")
    parser.add_argument("--shrink", action="store_true", help="shrink a failing example before printing it")
    args = parser.parse_args()
    chosen = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    print(f"convergence soak: {args.examples:,} examples, seed {chosen}", flush=True)
    log = FaultLog()
    started = time.perf_counter()
    outcome = "done"
    out = sys.stdout
    # The handlers print their metrics (EMF) to stdout, thousands of lines: only the soak's own report is shown.
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), aws_world(log) as world:
        phases = [Phase.generate, Phase.shrink] if args.shrink else [Phase.generate]

        @seed(chosen)
        @settings(
            max_examples=args.examples,
            deadline=None,
            database=None,
            phases=phases,
            suppress_health_check=list(HealthCheck),
        )
        @given(versions=catalog_versions, data=st.data())
        def soak(versions: list[list[dict[str, object]]], data: st.DataObject) -> None:
            run_example(world, versions, data)
            if log.examples % 100 == 0:
                elapsed = time.perf_counter() - started
                faults = sum(log.delivered.values())
                print(
                    f"  {log.examples:,} examples, {log.failed:,} failed, {faults:,} faults, {elapsed:,.0f} s",
                    file=out,
                    flush=True,
                )

        try:
            soak()
        except KeyboardInterrupt:
            outcome = "interrupted"
        except Exception:
            outcome = "failed"
            traceback.print_exc(file=out)
        elapsed = time.perf_counter() - started
        print(
            f"\nconvergence soak {outcome} after {elapsed:,.0f} s; the SDKs' retries backed off {world.slept:,.0f} s",
            file=out,
        )
        print(log.report(), file=out)
    if outcome == "failed" or log.failed:
        print(
            f"an example did not converge (above); `tests/soak.py --seed {chosen} --examples {log.examples}"
            f"{' --shrink' if args.shrink else ''}` runs the same examples again"
        )
        return 1
    if outcome == "interrupted":
        print(f"stopped before the {args.examples:,} examples asked for; no failure in the {log.examples:,} run")
        return 2
    print("every example converged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
