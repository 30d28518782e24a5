"""Shared helpers of the benchmarks: cached catalog pairs, peak memory, the benchmark catalog config."""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "functions"))

from catalog_generator_helpers import catalog_pair
from catalog_sync.models.config import CatalogConfig, FieldType, TextSpec
from catalog_sync.models.mapping import DerivedField, SourceSettings

DATA = Path(__file__).resolve().parent / ".data"


def bench_config() -> CatalogConfig:
    return CatalogConfig(
        name="bench",
        id_field="sku",
        text={"fields": ["title", "brand", "category", "description", "attributes"]},
        metadata={
            "title": "string",
            "brand": "string",
            "category": "string",
            "price": "number",
            "currency": "string",
            "availability": "string",
            "stock": "integer",
            "tags": "string_list",
            "image_url": "string",
        },
    )


def mapped_bench_config() -> CatalogConfig:
    """The benchmark catalog read through a mapping like a preset's: five derived fields, one of them HTML to text
    (every description is parsed as HTML), the others paths, a transform and an aggregate."""
    base = bench_config()
    return base.model_copy(
        update={
            "fields": {
                "name": DerivedField.model_validate({"from": "title", "transform": "collapse_whitespace"}),
                "summary": DerivedField.model_validate({"from": "description", "transform": "html_to_text"}),
                "color": DerivedField.model_validate({"from": "attributes.color"}),
                "material": DerivedField.model_validate({"from": "attributes.material"}),
                "labels": DerivedField.model_validate({"from": "tags", "aggregate": "unique"}),
            },
            "text": TextSpec(fields=["name", "brand", "category", "summary", "color", "material"]),
            "metadata": {**base.metadata, "color": FieldType.STRING, "labels": FieldType.STRING_LIST},
        }
    )


# Rows per product of the grouped catalog: the product's own row, then two variants.
VARIANT_ROWS = 3


def grouped_bench_config() -> CatalogConfig:
    """The mapped benchmark catalog with each product's rows grouped by sku (three rows per product, each with a
    variant price), and three aggregates over them."""
    base = mapped_bench_config()
    fields = dict(base.fields)
    fields["price_min"] = DerivedField.model_validate({"from": "variant_price", "aggregate": "min"})
    fields["price_max"] = DerivedField.model_validate({"from": "variant_price", "aggregate": "max"})
    fields["variants"] = DerivedField.model_validate({"from": "variant", "aggregate": "unique"})
    metadata = {**base.metadata, "price_min": FieldType.NUMBER, "price_max": FieldType.NUMBER}
    metadata["variants"] = FieldType.STRING_LIST
    return base.model_copy(update={"source": SourceSettings(group_by="sku"), "fields": fields, "metadata": metadata})


def grouped(path: Path) -> Path:
    """A JSON Lines catalog as a grouped one: each product's record, then two variant rows of its sku (their prices
    follow the product's, so that a price change changes the group). Written once beside the catalog."""
    target = path.with_name(path.stem + ".grouped.jsonl")
    if target.exists():
        return target
    with path.open("rb") as source, target.open("wb") as out:
        for line in source:
            product = orjson.loads(line)
            price = product["price"]
            out.write(orjson.dumps({**product, "variant": "A", "variant_price": price}) + b"\n")
            for variant, factor in (("B", 1.1), ("C", 1.25)):
                row = {"sku": product["sku"], "variant": variant, "variant_price": round(price * factor, 2)}
                out.write(orjson.dumps(row) + b"\n")
    return target


def unsorted_bench_config() -> CatalogConfig:
    """The grouped benchmark catalog with [source] sorted = false: a product's rows are joined wherever they are."""
    config = grouped_bench_config()
    return config.model_copy(update={"source": config.source.model_copy(update={"sorted": False})})


def scattered(path: Path) -> Path:
    """A grouped catalog with its rows as far apart as they go: every product's first row, then every second row,
    then every third (as an export ordered by row id lists variations added later). Written once beside it."""
    target = path.with_name(path.stem + ".scattered.jsonl")
    if target.exists():
        return target
    with target.open("wb") as out:
        for turn in range(3):
            with path.open("rb") as source:
                out.writelines(line for index, line in enumerate(source) if index % 3 == turn)
    return target


def dataset(n: int) -> tuple[Path, Path, dict[str, list[str]]]:
    """v1, v2 and the recorded change set for n products; generated once and kept under bench/.data."""
    directory = DATA / f"n{n}"
    changes_path = directory / "changes.json"
    if not changes_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        print(f"generating {n:,} products (cached in {directory}) ...", flush=True)
        _, _, changes = catalog_pair(directory, n)
        changes_path.write_bytes(orjson.dumps(changes))
    return directory / "v1.jsonl", directory / "v2.jsonl", orjson.loads(changes_path.read_bytes())


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB.

    VmHWM is per address space, so a child started from a big parent reports its own peak (ru_maxrss is
    carried across exec on Linux and would report the parent's).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
