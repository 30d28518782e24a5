"""The shopify-csv preset on a Shopify product export (tests/data/shopify/products.csv): a config of only a name and
the preset validates, syncs, and takes a variant's price edit as a metadata-only change of its product."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from catalog_sync import cli
from catalog_sync.cli.errors import ExitCode
from tests.doubles.cli import export_rows, invoke_json

SHOPIFY = Path(__file__).resolve().parents[1] / "data" / "shopify"
runner = CliRunner()
CONFIG = 'name = "my-shop"\npreset = "shopify-csv"\n\n[embedder]\nkind = "hashing"\n'


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "shop.toml").write_text(CONFIG)
    shutil.copy(SHOPIFY / "products.csv", tmp_path / "products.csv")
    return tmp_path


def invoke(workdir: Path, *args: str) -> tuple[int, Any]:
    return invoke_json(workdir / "shop.toml", *args, state_dir=None if args[0] == "validate" else workdir / "state")


def exported(workdir: Path) -> dict[str, dict[str, Any]]:
    return export_rows(workdir / "shop.toml", workdir / "state")


def test_a_name_and_the_preset_sync_a_shopify_export(workdir: Path):
    catalog = workdir / "products.csv"
    code, checked = invoke(workdir, "validate", str(catalog))
    assert code == ExitCode.OK, checked
    # Ten rows, three products; every name the preset reads is a column of the export.
    assert (checked["records"], checked["valid"], checked["invalid"]) == (10, 3, 0)
    assert checked["config_warnings"] == []

    code, plan = invoke(workdir, "monitor", str(catalog))
    assert code == ExitCode.OK and plan["counts"]["added"] == 3
    code, first = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK, first
    assert first["counts"]["added"] == 3 and first["applied"]["embedded"] == 3

    meta = exported(workdir)["classic-tee"]["metadata"]
    # Aggregated over the tee's three variant rows and its image-only row (stock 12 + 0 + 7).
    assert (meta["price_min"], meta["price_max"], meta["compare_at_price_max"]) == (60.0, 60.0, 75.0)
    assert meta["inventory"] == 19
    assert meta["skus"] == ["TEE-L-SAND", "TEE-M-SAGE", "TEE-S-SAGE"]
    assert meta["options"] == ["L", "M", "S"]
    assert meta["image"] == "https://cdn.shopify.example/files/tee-front.jpg"
    assert meta["tags"] == ["cotton", "summer", "basics"]
    assert (meta["vendor"], meta["published"], meta["status"]) == ("Fernway", True, "active")
    # The embedded text: the product's fields by lines, the description the HTML's text (no tags, quotes decoded,
    # list items on lines of their own).
    result = runner.invoke(
        cli.app,
        [
            "query",
            "organic tee",
            "-k",
            "1",
            "--config",
            str(workdir / "shop.toml"),
            "--state-dir",
            str(workdir / "state"),
            "--json",
        ],
    )
    [hit] = orjson.loads(result.stdout)
    assert hit["id"] == "classic-tee"
    assert hit["text"] == (
        "Classic Organic Tee\nFernway\nApparel & Accessories > Clothing > Shirts & Tops\nT-Shirts\n"
        'cotton, summer, basics\nA soft, breathable tee in organic cotton.\n\nRelaxed fit\nPre-shrunk, "true to size"'
    )

    # The tee's second variant (a row with only the Handle and the variant's columns): 60 -> 65.
    raw = catalog.read_bytes()
    variant = b"TEE-M-SAGE,200,shopify,0,deny,manual,60.00,"
    assert raw.count(variant) == 1
    catalog.write_bytes(raw.replace(variant, b"TEE-M-SAGE,200,shopify,0,deny,manual,65.00,"))
    code, second = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK, second
    # The maximum moved (65), the minimum did not (60); its priority: price_max is a priority field of the preset.
    assert second["changes"] == [
        {
            "id": "classic-tee",
            "kind": "metadata_only",
            "action": "update_metadata",
            "priority": True,
            "fields_changed": ["price_max"],
        }
    ]
    assert second["applied"]["metadata_updated"] == 1 and second["applied"]["embedded"] == 0
    assert exported(workdir)["classic-tee"]["metadata"]["price_max"] == 65.0


def test_variants_reordered_are_no_change_and_a_variant_removed_is_a_metadata_change(workdir: Path):
    catalog = workdir / "products.csv"
    raw = catalog.read_bytes()
    code, _ = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK
    rows = raw.split(b"\r\n")
    medium = next(i for i, row in enumerate(rows) if b"TEE-M-SAGE" in row)
    large = next(i for i, row in enumerate(rows) if b"TEE-L-SAND" in row)
    assert large == medium + 1
    swapped = [*rows]
    swapped[medium], swapped[large] = rows[large], rows[medium]
    catalog.write_bytes(b"\r\n".join(swapped))
    code, reordered = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK and reordered["changes"] == [] and reordered["counts"]["unchanged"] == 3

    catalog.write_bytes(b"\r\n".join(row for i, row in enumerate(rows) if i != large))
    code, removed = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK
    [change] = removed["changes"]
    assert (change["id"], change["kind"]) == ("classic-tee", "metadata_only")
    assert change["fields_changed"] == ["skus", "options", "inventory"]
    meta = exported(workdir)["classic-tee"]["metadata"]
    assert (meta["skus"], meta["inventory"]) == (["TEE-M-SAGE", "TEE-S-SAGE"], 12)


def test_config_show_prints_what_the_preset_and_the_file_make(workdir: Path):
    result = runner.invoke(cli.app, ["config", "show", "--config", str(workdir / "shop.toml"), "--json"])
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.stdout)
    assert shown["name"] == "my-shop" and shown["preset"] == "shopify-csv" and shown["id_field"] == "Handle"
    assert shown["embedder"]["kind"] == "hashing"
    assert shown["fields"]["price_max"] == {"from": "Variant Price", "aggregate": "max"}
