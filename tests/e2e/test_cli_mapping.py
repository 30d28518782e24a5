"""The CLI on a Shopify product export (tests/data/shopify): rows grouped by Handle, derived fields, end to end."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from catalog_sync import cli
from catalog_sync.cli.errors import ExitCode
from tests.doubles.cli import export_rows, invoke_json

SHOPIFY = Path(__file__).resolve().parents[1] / "data" / "shopify"
runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(SHOPIFY / "catalog.toml", tmp_path / "catalog.toml")
    shutil.copy(SHOPIFY / "products.csv", tmp_path / "products.csv")
    return tmp_path


def invoke(workdir: Path, *args: str, config: str = "catalog.toml") -> tuple[int, dict]:
    return invoke_json(workdir / config, *args, state_dir=None if args[0] == "validate" else workdir / "state")


def exported(workdir: Path) -> dict[str, dict]:
    return {
        product_id: row["metadata"]
        for product_id, row in export_rows(workdir / "catalog.toml", workdir / "state").items()
    }


def test_validate_sync_then_a_variant_price_edit_is_a_metadata_only_change(workdir: Path):
    catalog = workdir / "products.csv"
    raw = catalog.read_bytes()
    assert raw.count(b"\r\n") == 11 and b"<p>A soft, breathable tee" in raw  # CRLF rows, a newline inside a cell

    code, checked = invoke(workdir, "validate", str(catalog))
    assert code == ExitCode.OK, checked
    assert (checked["records"], checked["valid"], checked["invalid"]) == (10, 3, 0)

    code, first = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK, first
    assert first["counts"]["added"] == 3 and first["applied"]["embedded"] == 3
    assert exported(workdir)["classic-tee"]["price_max"] == 60.0

    # The tee's second variant (its second row, which has only the Handle and the variant's columns): 60 -> 65.
    variant = b"TEE-M-SAGE,200,shopify,0,deny,manual,60.00,"
    assert raw.count(variant) == 1
    catalog.write_bytes(raw.replace(variant, b"TEE-M-SAGE,200,shopify,0,deny,manual,65.00,"))
    code, second = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK, second
    assert second["changes"] == [
        {
            "id": "classic-tee",
            "kind": "metadata_only",
            "action": "update_metadata",
            "priority": True,
            "fields_changed": ["price_max", "prices"],
        }
    ]
    assert second["applied"]["metadata_updated"] == 1 and second["applied"]["embedded"] == 0
    tee = exported(workdir)["classic-tee"]
    assert (tee["price_min"], tee["price_max"], tee["prices"]) == (60.0, 65.0, ["60.00", "65.00"])

    # The same file again: nothing to do.
    code, third = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK and third["changes"] == [] and third["counts"]["unchanged"] == 3


def test_an_unsorted_export_is_quarantined_product_by_product(workdir: Path):
    catalog = workdir / "products.csv"
    invoke(workdir, "sync", str(catalog))
    header, *rows = catalog.read_bytes().split(b"\r\n")
    tee_image = rows[3]
    assert tee_image.startswith(b"classic-tee,") and b"tee-back.jpg" in tee_image
    unsorted = [header, *rows[:3], *rows[4:-1], tee_image, b""]
    catalog.write_bytes(b"\r\n".join(unsorted))
    code, checked = invoke(workdir, "validate", str(catalog))
    assert code == ExitCode.BAD_INPUT
    assert [problem["reason"] for problem in checked["problems"]] == [
        "rows of Handle 'classic-tee' are not contiguous (first seen at line 2, again at line 16): "
        "sort the file by Handle"
    ]
    code, synced = invoke(workdir, "sync", str(catalog))
    assert code == ExitCode.OK
    assert synced["changes"] == [] and synced["counts"]["invalid"] == 1
    assert "classic-tee" in exported(workdir)  # it keeps its last good version


def test_a_metadata_name_no_index_can_store_is_refused_before_anything_runs(workdir: Path):
    bad = (workdir / "catalog.toml").read_text().replace('image = "string"', '"Image Src" = "string"')
    (workdir / "bad.toml").write_text(bad)
    for command in ("validate", "sync", "monitor"):
        code, payload = invoke(workdir, command, str(workdir / "products.csv"), config="bad.toml")
        assert code == ExitCode.BAD_INPUT, (command, payload)
        assert "metadata field name 'Image Src' is not a plain name" in payload["error"]
        assert '[fields] image_src = { from = "Image Src" }' in payload["error"]
    assert not (workdir / "state" / "shopify").exists()


def test_the_readme_example_does_what_the_readme_says(tmp_path: Path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    # The section alone, up to the next heading of any level.
    section = re.split(r"\n#{2,3} ", readme.split("### Rows and derived fields", 1)[1], maxsplit=1)[0]
    blocks = dict(re.findall(r"```(csv|toml)\n(.*?)```", section, re.S))
    (tmp_path / "catalog.toml").write_text(blocks["toml"] + '\n[embedder]\nkind = "hashing"\n')
    catalog = tmp_path / "products.csv"
    catalog.write_text(blocks["csv"])
    code, first = invoke(tmp_path, "sync", str(catalog))
    assert code == ExitCode.OK and [change["id"] for change in first["changes"]] == ["classic-tee"]
    result = runner.invoke(
        cli.app,
        [
            "query",
            "organic tee",
            "--config",
            str(tmp_path / "catalog.toml"),
            "--state-dir",
            str(tmp_path / "state"),
            "--json",
        ],
    )
    (hit,) = orjson.loads(result.stdout)
    assert hit["text"] == (
        "Classic Organic Tee\nBy Fernway (T-Shirts)\nOptions: M, S\nA soft tee in organic cotton.\n\nRelaxed fit"
    )
    metadata = hit["metadata"]
    assert (metadata["price_min"], metadata["price_max"], metadata["prices"]) == (60.0, 60.0, ["60.00"])
    assert (metadata["inventory"], metadata["published"], len(metadata["images"])) == (12, True, 2)
    catalog.write_text(blocks["csv"].replace("TEE-M,0,60.00", "TEE-M,0,65.00"))
    code, second = invoke(tmp_path, "sync", str(catalog))
    assert [(c["id"], c["kind"], c["fields_changed"]) for c in second["changes"]] == [
        ("classic-tee", "metadata_only", ["price_max", "prices"])
    ]
    assert second["applied"]["embedded"] == 0
