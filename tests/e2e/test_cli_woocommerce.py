"""The woocommerce-csv preset on a WooCommerce product export (tests/data/woocommerce/products.csv): a config of only
a name and the preset validates, syncs one entry per parent product, and takes a variation's price edit, a variation
added and one removed as changes of its parent."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from catalog_sync.cli.errors import ExitCode
from tests.doubles.cli import export_rows, invoke_json

WOOCOMMERCE = Path(__file__).resolve().parents[1] / "data" / "woocommerce"
runner = CliRunner()
CONFIG = 'name = "my-store"\npreset = "woocommerce-csv"\n\n[embedder]\nkind = "hashing"\n'
# The hoodie's red variation, exported after three other products (ID 20, Parent woo-hoodie).
RED = b"20,variation,woo-hoodie-red,"
NEW_VARIATION = (
    "21,variation,,Polo - L,1,0,visible,,,,,taxable,,1,2,,0,0,,,,,1,,,24,,,,,,,id:15,,,,,,3,Size,L,1,1,,,,\n"
)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "store.toml").write_text(CONFIG)
    shutil.copy(WOOCOMMERCE / "products.csv", tmp_path / "products.csv")
    return tmp_path


def invoke(workdir: Path, *args: str) -> tuple[int, Any]:
    return invoke_json(workdir / "store.toml", *args, state_dir=None if args[0] == "validate" else workdir / "state")


def exported(workdir: Path) -> dict[str, dict[str, Any]]:
    return export_rows(workdir / "store.toml", workdir / "state")


def sync(workdir: Path, catalog: Path) -> dict:
    code, report = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK, report
    return report


def test_a_name_and_the_preset_sync_a_woocommerce_export(workdir: Path):
    catalog = workdir / "products.csv"
    code, checked = invoke(workdir, "validate", str(catalog))
    assert code == ExitCode.OK, checked
    # Eleven rows: six products, the five variations joined to their two parents.
    assert (checked["records"], checked["valid"], checked["invalid"]) == (11, 6, 0)
    assert checked["config_warnings"] == []

    code, plan = invoke(workdir, "monitor", str(catalog))
    assert code == ExitCode.OK and plan["counts"]["added"] == 6
    first = sync(workdir, catalog)
    assert first["counts"]["added"] == 6 and first["applied"]["embedded"] == 6

    products = exported(workdir)
    assert sorted(products) == ["10", "11", "14", "15", "18", "19"]
    hoodie = products["11"]["metadata"]
    assert (hoodie["price_min"], hoodie["price_max"], hoodie["stock"], hoodie["variations"]) == (42, 48, 12, 3)
    assert hoodie["attribute_1_values"] == ["Blue", "Green", "Red"]
    assert hoodie["categories"] == ["Clothing > Hoodies", "Clothing"]
    # The polo has no SKU: its variations name it id:15.
    assert products["15"]["metadata"]["price_max"] == 22

    # The red variation's Regular price, 48 -> 50: a metadata-only change of the hoodie, naming price_max.
    raw = catalog.read_bytes()
    line = next(line for line in raw.splitlines(keepends=True) if line.startswith(RED))
    assert line.count(b",48,") == 1
    catalog.write_bytes(raw.replace(line, line.replace(b",48,", b",50,")))
    second = sync(workdir, catalog)
    counts = second["counts"]
    assert (counts["metadata_only"], counts["text_changed"], counts["added"], counts["deleted"]) == (1, 0, 0, 0)
    [change] = second["changes"]
    assert change["id"] == "11" and change["fields_changed"] == ["price_max"]
    assert second["applied"]["embedded"] == 0
    assert exported(workdir)["11"]["metadata"]["price_max"] == 50

    # A variation of the polo added at the end of the file, then removed.
    edited = catalog.read_bytes()
    catalog.write_bytes(edited + NEW_VARIATION.encode())
    third = sync(workdir, catalog)
    assert [(c["id"], c["kind"]) for c in third["changes"]] == [("15", "metadata_only")]
    assert exported(workdir)["15"]["metadata"]["price_max"] == 24
    catalog.write_bytes(edited)
    fourth = sync(workdir, catalog)
    assert [(c["id"], c["kind"]) for c in fourth["changes"]] == [("15", "metadata_only")]
    polo = exported(workdir)["15"]["metadata"]
    assert (polo["price_max"], polo["variations"], polo["stock"]) == (22, 2, 7)


def test_a_variation_whose_parent_is_gone_is_quarantined_with_the_reason(workdir: Path):
    catalog = workdir / "products.csv"
    sync(workdir, catalog)
    lines = catalog.read_bytes().splitlines(keepends=True)
    catalog.write_bytes(b"".join(line for line in lines if not line.startswith(b"15,variable,")))
    code, report = invoke(workdir, "validate", str(catalog))
    assert code == ExitCode.BAD_INPUT, report
    assert (report["valid"], report["invalid"]) == (5, 1)
    [problem] = report["problems"]
    assert problem["product_id"] is None and problem["location"] == "line 12 (2 rows)"
    assert problem["reason"].endswith("their parent 'id:15' is not in the file")
