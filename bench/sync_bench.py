"""`sync` on the embedded default: v1, then v2, then v2 again, with the hashing embedder.

    python bench/sync_bench.py --n 100000

Prints each pass's seconds, the texts embedded, index writes and the peak RSS, and checks that
- the v2 pass embeds exactly the added plus text-changed products of the generator's change set;
- the third pass (an unchanged catalog) embeds nothing and writes nothing to the index.
The hashing embedder is used so that the figures measure catalog-sync, not a model (it is a deterministic
test embedder, not a semantic one).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import bench_config, dataset, peak_rss_mb
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.files import FileCatalogSource
from catalog_sync.bootstrap.local import LocalWorkspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    v1, v2, expected = dataset(args.n)
    embedder = HashingEmbedder()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        workspace = LocalWorkspace(Path(tmp), bench_config(), embedder)
        service = workspace.service()
        print(f"{'pass':<22}{'seconds':>9}{'embedded':>11}{'upserts':>11}{'meta upd':>10}{'deletes':>9}")
        for label, path in (("v1 (initial)", v1), ("v2 (incremental)", v2), ("v2 again (unchanged)", v2)):
            before = embedder.texts_embedded
            started = time.perf_counter()
            report = service.sync(FileCatalogSource(path))
            seconds = time.perf_counter() - started
            applied = report.applied
            embedded = embedder.texts_embedded - before
            print(
                f"{label:<22}{seconds:>9.2f}{embedded:>11,}{applied.upserted:>11,}{applied.metadata_updated:>10,}"
                f"{applied.deleted:>9,}"
            )
            phases = ", ".join(f"{name.removesuffix('_s')} {value:.2f}" for name, value in report.timings.items())
            print(f"{'':<22}[{phases}]")
            if report.failed or report.guard.held:
                failures.append(f"{label}: {report.error or report.guard.reason}")
            if label.startswith("v2 (incremental)"):
                wanted = len(expected["added"]) + len(expected["text_changed"])
                if embedded != wanted:
                    failures.append(f"v2 embedded {embedded:,}, expected added + text_changed = {wanted:,}")
                v2_seconds = seconds
            if label.startswith("v2 again") and (
                embedded or applied.upserted or applied.metadata_updated or applied.deleted
            ):
                failures.append("the unchanged pass embedded or wrote something")
        print(f"index holds {workspace.index.count():,} vectors; peak RSS {peak_rss_mb():,.0f} MB")
        print(f"incremental pass: {v2_seconds:.2f} s (target <= 4 s at 100k)")
    if failures:
        raise SystemExit("FAILED: " + "; ".join(failures))
    print("checks passed: v2 embedded exactly added + text-changed; the unchanged pass embedded and wrote nothing")


if __name__ == "__main__":
    main()
