"""Presets: a catalog's file extends one (`preset = "<name>"`), its own settings over the preset's; `config show`
prints the merged settings as a file catalog-sync loads back to the same config."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from catalog_sync import cli
from catalog_sync.models.config import ConfigError, FieldType, load_config, preset_names
from catalog_sync.models.mapping import Aggregate

runner = CliRunner()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_presets_are_the_shipped_files():
    shipped = sorted(
        entry.name[: -len(".toml")]
        for entry in resources.files("catalog_sync.presets").iterdir()
        if entry.name.endswith(".toml")
    )
    assert "shopify-csv" in shipped
    assert preset_names() == shipped


@pytest.mark.parametrize("preset", preset_names())
def test_a_name_and_a_preset_are_a_whole_config(tmp_path: Path, preset: str):
    config = load_config(write(tmp_path / "c.toml", f'name = "shop"\npreset = "{preset}"\n'))
    assert config.preset == preset
    raw = tomllib.loads(resources.files("catalog_sync.presets").joinpath(f"{preset}.toml").read_text())
    assert config.id_field == raw["id_field"]
    assert set(config.metadata) == set(raw["metadata"])
    assert set(config.fields) == set(raw["fields"])


def test_the_file_overrides_the_preset_key_by_key(tmp_path: Path):
    config = load_config(
        write(
            tmp_path / "c.toml",
            """
name = "shop"
preset = "shopify-csv"
priority_fields = ["inventory"]
[text]
separator = " | "
[metadata]
vendor = "string_list"
grams = "integer"
[fields]
grams = { from = "Variant Grams", aggregate = "max" }
price_min = { from = "Variant Compare At Price" }
""",
        )
    )
    # [text]: the one key changed, the preset's fields kept.
    assert config.text.separator == " | "
    assert "title" in config.text.fields
    # [metadata]: one type changed, one added, the others kept.
    assert config.metadata["vendor"] is FieldType.STRING_LIST
    assert config.metadata["grams"] is FieldType.INTEGER
    assert config.metadata["price_max"] is FieldType.NUMBER
    # [fields]: an entry of the preset's name replaces it whole (its aggregate goes too); a new one is added.
    assert config.fields["price_min"].source == "Variant Compare At Price"
    assert config.fields["price_min"].aggregate is None
    assert config.fields["grams"].aggregate is Aggregate.MAX
    assert config.fields["price_max"].aggregate is Aggregate.MAX
    # Lists are replaced, not merged.
    assert config.priority_fields == ["inventory"]


def test_an_unknown_preset_names_the_presets(tmp_path: Path):
    path = write(tmp_path / "c.toml", 'name = "shop"\npreset = "shopify"\n')
    with pytest.raises(ConfigError, match=r"unknown preset 'shopify'; the presets are .*shopify-csv"):
        load_config(path)


def test_config_show_prints_a_file_that_loads_back_to_the_same_config(tmp_path: Path):
    path = write(
        tmp_path / "c.toml",
        'name = "shop"\npreset = "shopify-csv"\n[metadata]\ngrams = "integer"\n'
        '[fields]\ngrams = { from = "Variant Grams", aggregate = "sum" }\n',
    )
    result = runner.invoke(cli.app, ["config", "show", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("# catalog shop: its file over preset 'shopify-csv'")
    shown = write(tmp_path / "shown.yaml", result.stdout)
    again, original = load_config(shown), load_config(path)
    assert again == original
    # Nothing the file left to its default comes back as chosen: the embedder's kind, the priority fields.
    assert again.embedder.model_fields_set == original.embedder.model_fields_set == set()
    assert "embedder" not in result.stdout and "guard" not in result.stdout


def test_config_show_a_preset_alone_and_as_json():
    result = runner.invoke(cli.app, ["config", "show", "--preset", "shopify-csv", "--json"])
    assert result.exit_code == 0, result.output
    shown = orjson.loads(result.stdout)
    assert shown["source"] == {"group_by": "Handle"}
    assert shown["fields"]["description"] == {"from": "Body (HTML)", "transform": "html_to_text"}


def test_config_show_an_unknown_preset_is_bad_input():
    result = runner.invoke(cli.app, ["config", "show", "--preset", "nope"])
    assert result.exit_code == 3
    assert "unknown preset 'nope'" in result.stderr


def test_config_presets_lists_them():
    result = runner.invoke(cli.app, ["config", "presets", "--json"])
    assert result.exit_code == 0
    assert orjson.loads(result.stdout) == {"presets": preset_names()}


def test_the_environment_names_the_preset_as_the_file_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CATALOG_SYNC_PRESET", "shopify-csv")
    config = load_config(write(tmp_path / "c.toml", 'name = "shop"\n[text]\nfields = ["title"]\n'))
    # Merged, not only named: the preset's grouping and fields are there, the file's own [text] over them.
    assert config.preset == "shopify-csv" and config.source.group_by == "Handle"
    assert "price_max" in config.fields and config.text.fields == ["title"]
