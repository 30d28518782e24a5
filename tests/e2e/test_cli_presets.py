"""Shipped presets end to end through the CLI, each on a feed as its platform exports it.

google-merchant: a Google Merchant Center feed (tests/data/feeds/merchant-apparel.xml, its tab-separated twin
merchant-apparel.tsv, and the same items as an Atom feed) synced with a config of only a name and the preset."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from catalog_sync import cli
from catalog_sync.cli.errors import ExitCode
from tests.doubles.cli import export_rows, invoke_json

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
runner = CliRunner()
MERCHANT_CONFIG = 'name = "fernway"\npreset = "google-merchant"\n\n[embedder]\nkind = "hashing"\n'
MERCHANT_IDS = ["BAG-WKND-TAN", "TEE-L-SAND", "TEE-M-SAGE", "TEE-S-SAGE"]
# What the feed says of its first item, read off merchant-apparel.xml by hand.
MERCHANT_SAGE_S = {
    "title": "Classic organic tee - Sage / S",
    "brand": "Fernway",
    "link": "https://www.fernway.example/products/classic-tee?variant=1",
    "image_link": "https://cdn.fernway.example/tee-sage-front.jpg",
    "additional_image_link": [
        "https://cdn.fernway.example/tee-sage-back.jpg",
        "https://cdn.fernway.example/tee-sage-detail.jpg",
    ],
    "availability": "in stock",
    "condition": "new",
    "price": 25.0,
    "sale_price": 19.9,
    "currency": "USD",
    "gtin": "00614141000012",
    "mpn": "FW-TEE-SAGE-S",
    "google_product_category": "Apparel & Accessories > Clothing > Shirts & Tops",
    "product_type": "Tops > T-shirts",
    "item_group_id": "TEE",
    "color": "Sage",
    "size": "S",
    "material": "Organic cotton",
    "gender": "unisex",
    "age_group": "adult",
    "custom_label_0": "summer",
    "custom_label_1": "bestseller",
}
# Its embedded text: the preset's text fields by lines, the highlights by commas, the CDATA's HTML as text.
MERCHANT_SAGE_S_TEXT = (
    "Classic organic tee - Sage / S\nFernway\nTops > T-shirts\nSage\nS\nOrganic cotton\n"
    "Certified organic cotton, Relaxed fit that keeps its shape\n"
    "A soft tee in organic cotton & a relaxed fit.\n\nPre-shrunk\nMachine wash cold"
)


def merchant_atom(rss: str) -> str:
    """The RSS feed's items as Google's Atom 1.0 feed has them: <entry> elements of a <feed>."""
    items = re.findall(r"<item>(.*?)</item>", rss, flags=re.DOTALL)
    entries = "".join(f"<entry>{item}</entry>\n" for item in items)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">\n'
        '<title>Fernway Outfitters</title>\n<link rel="self" href="https://www.fernway.example"/>\n'
        f"<updated>2026-12-01T08:00:00Z</updated>\n{entries}</feed>\n"
    )


@pytest.fixture
def merchant_dir(tmp_path: Path) -> Path:
    (tmp_path / "fernway.toml").write_text(MERCHANT_CONFIG)
    for feed in ("merchant-apparel.xml", "merchant-apparel.tsv"):
        shutil.copy(FEEDS / feed, tmp_path / feed)
    rss = (FEEDS / "merchant-apparel.xml").read_text(encoding="utf-8")
    (tmp_path / "merchant-apparel-atom.xml").write_text(merchant_atom(rss), encoding="utf-8")
    return tmp_path


def merchant_invoke(workdir: Path, *args: str, state: str = "state") -> tuple[int, Any]:
    return invoke_json(workdir / "fernway.toml", *args, state_dir=None if args[0] == "validate" else workdir / state)


def merchant_invoke_text(workdir: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, [*args, "--config", str(workdir / "fernway.toml")])
    return result.exit_code, result.stdout


def merchant_export(workdir: Path, state: str = "state") -> dict[str, dict[str, Any]]:
    return export_rows(workdir / "fernway.toml", workdir / state)


def merchant_text(workdir: Path, size: str) -> str:
    """The embedded text of the one item of this size."""
    code, hits = merchant_invoke(workdir, "query", "tee", "-k", "10", "--filter", f"size={size}")
    assert code == ExitCode.OK and len(hits) == 1, hits
    return str(hits[0]["text"])


@pytest.mark.parametrize("feed", ["merchant-apparel.xml", "merchant-apparel.tsv", "merchant-apparel-atom.xml"])
def test_google_merchant_preset_syncs_a_feed_and_a_price_edit_is_metadata_only(merchant_dir: Path, feed: str):
    catalog = merchant_dir / feed
    code, checked = merchant_invoke(merchant_dir, "validate", str(catalog))
    assert code == ExitCode.OK, checked
    assert (checked["records"], checked["valid"], checked["invalid"]) == (4, 4, 0)
    # Every attribute the preset reads is in some item of this feed: no name to warn about.
    assert checked["config_warnings"] == []

    code, plan = merchant_invoke(merchant_dir, "monitor", str(catalog))
    assert code == ExitCode.OK and plan["counts"]["added"] == 4
    code, first = merchant_invoke(merchant_dir, "sync", str(catalog))
    assert code == ExitCode.OK, first
    assert first["counts"]["added"] == 4 and first["applied"]["embedded"] == 4

    index = merchant_export(merchant_dir)
    # One entry per item: the variants of the tee are three entries sharing item_group_id.
    assert sorted(index) == MERCHANT_IDS
    assert index["TEE-S-SAGE"]["metadata"] == MERCHANT_SAGE_S
    bag = index["BAG-WKND-TAN"]["metadata"]
    assert (bag["price"], bag["currency"], bag["availability"]) == (249.0, "USD", "preorder")
    assert "sale_price" not in bag and "item_group_id" not in bag
    assert merchant_text(merchant_dir, "S") == MERCHANT_SAGE_S_TEXT
    code, variants = merchant_invoke(merchant_dir, "query", "tee", "-k", "10", "--filter", "item_group_id=TEE")
    assert code == ExitCode.OK and sorted(hit["id"] for hit in variants) == MERCHANT_IDS[1:]

    # The bag's price drops: a metadata-only change naming price, a priority field of the preset.
    raw = catalog.read_text(encoding="utf-8")
    assert raw.count("249.00 USD") == 1
    catalog.write_text(raw.replace("249.00 USD", "229.00 USD"), encoding="utf-8")
    code, second = merchant_invoke(merchant_dir, "sync", str(catalog))
    assert code == ExitCode.OK, second
    assert second["changes"] == [
        {
            "id": "BAG-WKND-TAN",
            "kind": "metadata_only",
            "action": "update_metadata",
            "priority": True,
            "fields_changed": ["price"],
        }
    ]
    assert second["applied"]["metadata_updated"] == 1 and second["applied"]["embedded"] == 0
    after = merchant_export(merchant_dir)
    assert after["BAG-WKND-TAN"]["metadata"]["price"] == 229.0
    assert after["BAG-WKND-TAN"]["text_hash"] == index["BAG-WKND-TAN"]["text_hash"]


def test_google_merchant_xml_tsv_and_atom_feeds_give_the_same_index(merchant_dir: Path):
    indexes = []
    for feed in ("merchant-apparel.xml", "merchant-apparel.tsv", "merchant-apparel-atom.xml"):
        state = f"state-{feed}"
        code, report = merchant_invoke(merchant_dir, "sync", str(merchant_dir / feed), state=state)
        assert code == ExitCode.OK, report
        indexes.append(
            {key: (row["metadata"], row["text_hash"]) for key, row in merchant_export(merchant_dir, state).items()}
        )
    assert indexes[0] == indexes[1] == indexes[2]


def test_google_merchant_price_without_a_number_is_quarantined_naming_the_field(merchant_dir: Path):
    catalog = merchant_dir / "merchant-apparel.xml"
    raw = catalog.read_text(encoding="utf-8")
    catalog.write_text(raw.replace("<g:price>249.00 USD</g:price>", "<g:price>call for price</g:price>"))
    code, checked = merchant_invoke(merchant_dir, "validate", str(catalog))
    assert code == ExitCode.BAD_INPUT and (checked["valid"], checked["invalid"]) == (3, 1)

    code, report = merchant_invoke(merchant_dir, "sync", str(catalog))
    assert code == ExitCode.OK, report
    assert report["counts"]["added"] == 3 and report["counts"]["invalid"] == 1
    [quarantined] = [orjson.loads(line) for line in Path(report["quarantine"]).read_bytes().splitlines()]
    assert quarantined["product_id"] == "BAG-WKND-TAN"
    assert quarantined["reason"] == (
        "fields.price: the transform 'number' needs a text that starts with a number, like \"15.00 USD\" (a period "
        "before the decimals, commas only between thousands), got 'call for price'"
    )
    assert quarantined["record"]["price"] == "call for price"  # the record as read, kept
    assert sorted(merchant_export(merchant_dir)) == MERCHANT_IDS[1:]


def test_google_merchant_item_without_a_price_is_quarantined_as_missing_it(merchant_dir: Path):
    catalog = merchant_dir / "merchant-apparel.tsv"
    raw = catalog.read_text(encoding="utf-8")
    assert raw.count("\t249.00 USD\t") == 1
    catalog.write_text(raw.replace("\t249.00 USD\t", "\t\t"), encoding="utf-8")
    code, report = merchant_invoke(merchant_dir, "sync", str(catalog))
    assert code == ExitCode.OK, report
    [quarantined] = [orjson.loads(line) for line in Path(report["quarantine"]).read_bytes().splitlines()]
    assert quarantined["product_id"] == "BAG-WKND-TAN"
    assert quarantined["reason"] == "required field 'price' is missing or empty"


# The text twin has no google_product_category column.
@pytest.mark.parametrize(
    ("feed", "also_lacking"), [("merchant.xml", []), ("merchant.tsv", ["google_product_category"])]
)
def test_google_merchant_preset_syncs_a_feed_using_fewer_attributes_and_names_the_ones_it_lacks(
    tmp_path: Path, feed: str, also_lacking: list[str]
):
    (tmp_path / "fernway.toml").write_text(MERCHANT_CONFIG)
    catalog = tmp_path / feed
    shutil.copy(FEEDS / feed, catalog)
    code, checked = merchant_invoke(tmp_path, "validate", str(catalog))
    assert code == ExitCode.OK, checked
    assert (checked["valid"], checked["invalid"]) == (3, 0)
    # A kitchen shop's feed: no variants, no apparel attributes, no custom labels. They are the preset's optional
    # attributes, said once (config_check.preset_fields_absent), not warned of one by one.
    assert checked["config_warnings"] == []
    assert checked["config_check"]["preset_fields_absent"] == sorted(
        ["color", "size", "material", "product_highlight", "item_group_id", "gender", "age_group"]
        + [f"custom_label_{n}" for n in range(5)]
        + also_lacking
    )
    code, stdout = merchant_invoke_text(tmp_path, "validate", str(catalog))
    assert code == ExitCode.OK and "warning" not in stdout
    assert "preset google-merchant: no record has age_group, color, custom_label_0" in stdout
    code, report = merchant_invoke(tmp_path, "sync", str(catalog))
    assert code == ExitCode.OK and report["counts"]["added"] == 3, report
    mug = merchant_export(tmp_path)["HK-1002"]["metadata"]
    assert (mug["title"], mug["price"], mug["sale_price"], mug["currency"]) == (
        'Stoneware mug "Harbour" 350 ml',
        12.0,
        9.5,
        "USD",
    )
