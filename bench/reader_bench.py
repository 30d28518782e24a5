"""Reader throughput and memory per catalog format, on the same products written each way.

    python bench/reader_bench.py --n 100000

Writes n products as a JSON array, a JSON array wrapped in an object ([source] records), tab-separated text and a
Google Merchant Center RSS feed, then reads each through open_catalog (parsing only: no validation, no diff) and
prints records per second and the peak memory traced while reading, which must not grow with n.
"""

from __future__ import annotations

import argparse
import io
import time
import tracemalloc
from typing import Any

import orjson

from catalog_sync.formats.catalog import open_catalog

COLUMNS = ("id", "title", "description", "price", "availability", "brand")


def products(n: int) -> list[dict[str, str]]:
    return [
        {
            "id": f"P{i}",
            "title": f"Product {i}",
            "description": "A fine product, well made. " * 5,
            "price": f"{i % 100}.50 USD",
            "availability": "in stock",
            "brand": "Harbour",
        }
        for i in range(n)
    ]


def as_rss(records: list[dict[str, str]]) -> bytes:
    items = "".join("<item>" + "".join(f"<g:{c}>{r[c]}</g:{c}>" for c in COLUMNS) + "</item>" for r in records)
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">'
    return f"{head}<channel><title>Shop</title>{items}</channel></rss>".encode()


def as_tsv(records: list[dict[str, str]]) -> bytes:
    rows = ["\t".join(COLUMNS)] + ["\t".join(r[c] for c in COLUMNS) for r in records]
    return ("\n".join(rows) + "\n").encode()


def read_all(data: bytes, name: str, options: dict[str, Any]) -> int:
    return sum(1 for _ in open_catalog(io.BytesIO(data), name, **options).records())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    n = parser.parse_args().n
    records = products(n)
    formats: list[tuple[str, bytes, str, dict[str, Any]]] = [
        ("JSON array", orjson.dumps(records), "c.json", {}),
        ("wrapped JSON", orjson.dumps({"products": records, "total": n}), "c.json", {"records": "products"}),
        ("tab-separated", as_tsv(records), "c.tsv", {"id_field": "id"}),
        ("RSS (Merchant)", as_rss(records), "c.xml", {}),
    ]
    for label, data, name, options in formats:
        started = time.perf_counter()
        count = read_all(data, name, options)
        seconds = time.perf_counter() - started
        assert count == n, (label, count)
        tracemalloc.start()
        read_all(data, name, options)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(
            f"{label:15} {n:,} records, {len(data) / 1e6:5.1f} MB: {seconds:5.2f} s "
            f"({n / seconds:9,.0f} records/s), {peak / 1e6:.2f} MB peak while reading"
        )


if __name__ == "__main__":
    main()
