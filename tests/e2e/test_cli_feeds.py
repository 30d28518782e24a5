"""The CLI on feeds as merchants publish them: a Google Merchant Center XML feed, its tab-separated twin, and an
API response that wraps its array ([source] records). Validate, sync, edit a price, sync: a metadata-only change."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from catalog_sync import cli
from tests.doubles.catalog_config import catalog_toml
from tests.doubles.cli import RecordingEmbedder, export_rows, invoke_json

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"
runner = CliRunner()
FEED_CONFIG = catalog_toml(
    "feed",
    id_field="id",
    text_fields=["title", "brand", "product_type", "description"],
    metadata={
        "price": "string",
        "sale_price": "string",
        "availability": "string",
        "brand": "string",
        "link": "string",
        "image_link": "string",
        "additional_image_link": "string_list",
        "condition": "string",
    },
    # Google's text feed gives a repeated attribute's values comma-separated in one cell.
    csv={"list_separator": ","},
)
# What the feed says of its first product, read off merchant.xml by hand.
SKILLET = {
    "price": "39.90 USD",
    "availability": "in stock",
    "brand": "Harbour",
    "link": "https://www.harbour-kitchen.example/p/hk-1001",
    "image_link": "https://img.harbour-kitchen.example/hk-1001/main.jpg",
    "additional_image_link": [
        "https://img.harbour-kitchen.example/hk-1001/side.jpg",
        "https://img.harbour-kitchen.example/hk-1001/lid.jpg",
    ],
    "condition": "new",
}


@pytest.fixture
def embedder(monkeypatch: pytest.MonkeyPatch) -> RecordingEmbedder:
    shared = RecordingEmbedder()
    monkeypatch.setattr(cli, "build_embedder", lambda settings: shared)
    return shared


def invoke(config: Path, *args: str, state: Path | None = None) -> tuple[int, dict[str, Any]]:
    return invoke_json(config, *args, state_dir=None if args[0] == "validate" else state)


def export(config: Path, state: Path) -> dict[str, dict[str, Any]]:
    return export_rows(config, state)


def sync_edit_sync(tmp_path: Path, feed: str, embedder: RecordingEmbedder) -> dict[str, dict[str, Any]]:
    """Validate and sync the feed, raise one price, sync again: the index as first synced."""
    tmp_path.mkdir(exist_ok=True)
    config = tmp_path / "feed.toml"
    config.write_text(FEED_CONFIG)
    catalog = tmp_path / feed
    shutil.copy(FEEDS / feed, catalog)
    state = tmp_path / "state"

    code, report = invoke(config, "validate", str(catalog))
    assert (code, report["records"], report["valid"], report["invalid"]) == (0, 3, 3, 0), report

    code, first = invoke(config, "sync", str(catalog), state=state)
    assert code == 0, first
    assert first["counts"]["added"] == 3
    assert len(embedder.texts) == 3
    index = export(config, state)
    assert sorted(index) == ["HK-1001", "HK-1002", "HK-1003"]

    # The mug's price goes up: nothing is embedded, one product's metadata is rewritten.
    data = catalog.read_text(encoding="utf-8")
    assert data.count("12.00 USD") == 1
    catalog.write_text(data.replace("12.00 USD", "13.00 USD"), encoding="utf-8")
    code, second = invoke(config, "sync", str(catalog), state=state)
    assert code == 0, second
    counts = second["counts"]
    assert (counts["metadata_only"], counts["text_changed"], counts["added"], counts["deleted"]) == (1, 0, 0, 0)
    assert second["applied"]["metadata_updated"] == 1
    assert len(embedder.texts) == 3
    after = export(config, state)
    assert after["HK-1002"]["metadata"]["price"] == "13.00 USD"
    assert after["HK-1002"]["text_hash"] == index["HK-1002"]["text_hash"]
    return index


def test_a_google_merchant_xml_feed_validates_syncs_and_a_price_edit_is_metadata_only(
    tmp_path: Path, embedder: RecordingEmbedder
):
    index = sync_edit_sync(tmp_path, "merchant.xml", embedder)
    assert index["HK-1001"]["metadata"] == SKILLET
    mug = index["HK-1002"]["metadata"]
    assert mug["additional_image_link"] == ["https://img.harbour-kitchen.example/hk-1002/handle.jpg"]  # one: a list
    assert mug["sale_price"] == "9.50 USD"
    assert index["HK-1003"]["metadata"]["brand"] == "Keel & Co"
    # The CDATA description, its HTML as written; the unprefixed RSS <title> of the mug read like a g:title.
    texts = sorted(embedder.texts)
    assert any(text.startswith('Stoneware mug "Harbour" 350 ml\nHarbour\nTableware > Mugs\n') for text in texts), texts
    assert any("<p>Pre-seasoned <b>cast iron</b> skillet &amp; lid.</p>" in text for text in texts), texts


def test_the_same_feed_tab_separated_gives_the_same_index(tmp_path: Path, embedder: RecordingEmbedder):
    from_tsv = sync_edit_sync(tmp_path / "tsv", "merchant.tsv", embedder)
    texts_from_tsv = list(embedder.texts)
    embedder.texts.clear()
    from_xml = sync_edit_sync(tmp_path / "xml", "merchant.xml", embedder)
    assert from_tsv["HK-1001"]["metadata"] == SKILLET
    assert {key: row["metadata"] for key, row in from_tsv.items()} == {
        key: row["metadata"] for key, row in from_xml.items()
    }
    assert sorted(texts_from_tsv) == sorted(embedder.texts)


API_RESPONSE: dict[str, Any] = {
    "products": [
        {
            "id": 1,
            "title": "Essence Mascara Lash Princess",
            "description": "A volumizing and lengthening mascara.",
            "category": "beauty",
            "price": 9.99,
            "stock": 5,
            "tags": ["beauty", "mascara"],
            "availability": "in_stock",
        },
        {
            "id": 2,
            "title": "Eyeshadow Palette with Mirror",
            "description": "A palette of eyeshadow shades, with a mirror.",
            "category": "beauty",
            "price": 19.99,
            "stock": 44,
            "tags": ["beauty", "eyeshadow"],
            "availability": "in_stock",
        },
    ],
    "total": 194,
    "skip": 0,
    "limit": 2,
}


def test_an_api_response_wrapping_its_array_syncs_with_source_records(tmp_path: Path, embedder: RecordingEmbedder):
    metadata = {"price": "number", "stock": "integer", "tags": "string_list", "availability": "string"}
    config = tmp_path / "api.toml"
    catalog = tmp_path / "products.json"
    catalog.write_text(json.dumps(API_RESPONSE))
    state = tmp_path / "state"

    config.write_text(catalog_toml("api", id_field="id", metadata=metadata))
    code, refused = invoke(config, "sync", str(catalog), state=state)
    assert code == 3  # bad input, nothing synced
    assert (
        'holds an object, not an array; set [source] records = "products" (arrays found: products)'
        in (refused["error"])
    )

    config.write_text(catalog_toml("api", id_field="id", metadata=metadata, source={"records": "products"}))
    code, report = invoke(config, "sync", str(catalog), state=state)
    assert code == 0, report
    assert report["counts"]["added"] == 2
    index = export(config, state)
    first: dict[str, Any] = API_RESPONSE["products"][0]
    assert index["1"]["metadata"] == {name: first[name] for name in metadata}
