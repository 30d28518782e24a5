"""Diff throughput and memory, against a floor measured in the same process.

    python bench/diff_bench.py --n 100000
    python bench/diff_bench.py --n 1000000
    python bench/diff_bench.py --n 100000 --mapped            # through five derived fields, one HTML to text
    python bench/diff_bench.py --n 100000 --full-path --repeat 3
    python bench/diff_bench.py --n 100000 --grouped           # three rows per product, grouped by sku
    python bench/diff_bench.py --n 100000 --unsorted          # the same rows scattered, [source] sorted = false

1. seeds a SQLite state with catalog v1 (in chunks, as a sync would leave it);
2. in a fresh child process (so that peak RSS is the diff's own), measures
   - the floor: read v2 (JSON Lines), orjson-parse each record and xxh3-hash it, nothing else;
   - the diff: load the state snapshot, stream v2 through validation, hashing and comparison;
3. prints products per second, the ratio to the floor, peak RSS, and checks the change counts against the
   change set the generator recorded.

--mapped reads the catalog through a [fields] mapping (bench/_common.mapped_bench_config). --full-path diffs as
`sync --full` does, so every record is validated (and mapped) instead of unchanged lines costing one hash: the
mapping's whole cost. --grouped reads each product as three rows grouped by sku ([source] group_by) through the
mapping and three aggregates (bench/_common.grouped_bench_config); the floor reads the same rows. --unsorted reads
those rows scattered (every product's first row, then every second, then every third) with [source] sorted = false,
so every product is joined from three places. --repeat N keeps
the fastest of N diffs (the machine's noise, not the code's).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import xxhash

from _common import (
    VARIANT_ROWS,
    bench_config,
    dataset,
    grouped,
    grouped_bench_config,
    mapped_bench_config,
    peak_rss_mb,
    scattered,
    unsorted_bench_config,
)
from catalog_sync.adapters.local.sqlite_state import SqliteStateStore
from catalog_sync.formats.catalog import CatalogStream, open_catalog
from catalog_sync.logic.diff import CatalogDiff
from catalog_sync.logic.snapshot import EmptySnapshot
from catalog_sync.models.config import CatalogConfig
from catalog_sync.models.index import IndexSettings

MODEL_ID = "catalog-sync/hashing-v2-384"


def seed_state(v1: Path, state_path: Path, config: CatalogConfig) -> float:
    differ = CatalogDiff(config, model_id=MODEL_ID)
    store = SqliteStateStore(state_path, config.name)
    started = time.perf_counter()
    with v1.open("rb") as raw:
        stream = open_catalog(raw, v1.name)
        assert stream.lines is not None
        # Whole groups per chunk: a product's rows must be read together.
        rows = VARIANT_ROWS if config.source.group_by else 1
        while chunk := list(itertools.islice(stream.lines, 20_000 * rows)):
            result = differ.run(CatalogStream(stream.name, stream.kind, lines=iter(chunk)), EmptySnapshot(), version=1)
            store.record_desired(result.changes, [])
            store.commit(result.changes)
    store.record_index_settings(IndexSettings(embedding_model=MODEL_ID, text_template=config.text.fingerprint()))
    store.close()
    return time.perf_counter() - started


def measure(v2: Path, state_path: Path, config: CatalogConfig, *, full: bool, repeat: int) -> dict[str, float]:
    # Floor: parse + hash per record, no validation, no state.
    started = time.perf_counter()
    records = 0
    with v2.open("rb") as raw:
        for line in raw:
            orjson.loads(line)
            xxhash.xxh3_64_intdigest(line)
            records += 1
    floor_s = time.perf_counter() - started

    store = SqliteStateStore(state_path, config.name)
    diff_s = snapshot_s = cpu_s = float("inf")
    for _ in range(repeat):
        differ = CatalogDiff(config, model_id=MODEL_ID)
        started, cpu_started = time.perf_counter(), time.process_time()
        snapshot = store.snapshot()
        snapshot_taken = time.perf_counter() - started
        with v2.open("rb") as raw:
            result = differ.run(open_catalog(raw, v2.name), snapshot, version=2, full=full)
        elapsed = time.perf_counter() - started
        # CPU time is what this process spent, whatever else the machine runs: the steadier figure to compare.
        cpu_s = min(cpu_s, time.process_time() - cpu_started)
        if elapsed < diff_s:
            diff_s, snapshot_s = elapsed, snapshot_taken
    counts = result.counts
    return {
        "records": records,
        "floor_s": floor_s,
        "snapshot_s": snapshot_s,
        "diff_s": diff_s,
        "cpu_s": cpu_s,
        "added": counts.added,
        "text_changed": counts.text_changed,
        "metadata_only": counts.metadata_only,
        "deleted": counts.deleted,
        "unchanged": counts.unchanged,
        "invalid": counts.invalid,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--mapped", action="store_true", help="read the catalog through five derived fields")
    parser.add_argument("--full-path", action="store_true", help="validate every record, as sync --full does")
    parser.add_argument("--grouped", action="store_true", help="three rows per product, grouped by sku")
    parser.add_argument("--unsorted", action="store_true", help="the grouped rows scattered, [source] sorted = false")
    parser.add_argument("--repeat", type=int, default=1, help="keep the fastest of this many diffs")
    parser.add_argument("--measure", nargs=2, metavar=("V2", "STATE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.grouped = args.grouped or args.unsorted
    if args.unsorted:
        config = unsorted_bench_config()
    else:
        config = grouped_bench_config() if args.grouped else mapped_bench_config() if args.mapped else bench_config()
    if args.measure:
        measured = measure(
            Path(args.measure[0]), Path(args.measure[1]), config, full=args.full_path, repeat=args.repeat
        )
        print(json.dumps(measured))
        return

    v1, v2, expected = dataset(args.n)
    if args.grouped:
        v1, v2 = grouped(v1), grouped(v2)
    if args.unsorted:
        v2 = scattered(v2)
    with tempfile.TemporaryDirectory() as tmp:
        state_path = Path(tmp) / "state.sqlite"
        seed_s = seed_state(v1, state_path, config)
        print(f"seeded state with v1: {args.n:,} products in {seed_s:.1f} s (the first sync's diff + state writes)")
        options = [
            *(["--mapped"] if args.mapped else []),
            *(["--grouped"] if args.grouped else []),
            *(["--unsorted"] if args.unsorted else []),
            *(["--full-path"] if args.full_path else []),
        ]
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(v2), str(state_path), *options, "--repeat", str(args.repeat)],
            check=True,
            capture_output=True,
            text=True,
        )
    m = json.loads(child.stdout.strip().splitlines()[-1])
    unit = "rows" if args.grouped else "products"
    floor_rate = m["records"] / m["floor_s"]
    diff_rate = m["records"] / m["diff_s"]
    scenario = (
        "unsorted (3 rows per product scattered, sorted = false, [fields]: 8 derived fields)"
        if args.unsorted
        else "grouped (3 rows per product, [fields]: 8 derived fields)"
        if args.grouped
        else "mapped ([fields]: 5 derived fields)"
        if args.mapped
        else "unmapped"
    ) + (", full path (every record validated)" if args.full_path else "")
    print(f"catalog v2: {m['records']:,} {unit}, {v2.stat().st_size / 1e6:,.0f} MB JSON Lines; {scenario}")
    print(f"floor  (orjson parse + xxh3 per record): {m['floor_s']:6.2f} s  {floor_rate:>10,.0f} {unit}/s")
    print(
        f"diff   (snapshot {m['snapshot_s']:.2f} s + stream/validate/hash/compare): {m['diff_s']:6.2f} s  "
        f"{diff_rate:>10,.0f} {unit}/s"
    )
    cpu_rate = m["records"] / m["cpu_s"]
    print(f"diff CPU time (fastest of {args.repeat}): {m['cpu_s']:.3f} s  {cpu_rate:>10,.0f} {unit}/s")
    print(f"diff / floor throughput: {diff_rate / floor_rate:.2f}  (target >= 0.50)")
    print(f"peak RSS of the measuring process: {m['peak_rss_mb']:,.0f} MB")
    found = {key: m[key] for key in ("added", "text_changed", "metadata_only", "deleted")}
    wanted = {key: len(ids) for key, ids in expected.items()}
    print(f"changes found {found}, unchanged {m['unchanged']:,}, invalid {m['invalid']}")
    print("matches the generator's change set" if found == wanted else f"MISMATCH: expected {wanted}")
    if found != wanted:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
