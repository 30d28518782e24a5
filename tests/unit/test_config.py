from pathlib import Path

import pytest

from catalog_sync.models.config import ConfigError, load_config

TOML = """
name = "shop"
id_field = "sku"
[text]
fields = ["title", "description"]
template = "{title}: {description}"
[metadata]
price = "number"
[guard]
max_delete_share = 0.3
"""


def test_toml_and_yaml_load_the_same(tmp_path: Path):
    toml_path = tmp_path / "c.toml"
    toml_path.write_text(TOML)
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text(
        "name: shop\nid_field: sku\ntext:\n  fields: [title, description]\n  template: '{title}: {description}'\n"
        "metadata:\n  price: number\nguard:\n  max_delete_share: 0.3\n"
    )
    assert load_config(toml_path) == load_config(yaml_path)
    config = load_config(toml_path)
    assert config.priority_fields == ["price", "availability", "stock"]
    assert config.index_namespace == "shop"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "c.toml"
    path.write_text(TOML)
    monkeypatch.setenv("CATALOG_SYNC_NAMESPACE", "prod-shop")
    monkeypatch.setenv("CATALOG_SYNC_GUARD__MAX_DELETE_SHARE", "0.05")
    config = load_config(path)
    assert config.index_namespace == "prod-shop"
    assert config.guard.max_delete_share == 0.05


def test_template_with_unknown_field_is_rejected(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text(TOML.replace("{title}: {description}", "{title} {colour}"))
    with pytest.raises(ConfigError, match="colour"):
        load_config(path)


def test_bad_type_and_syntax_name_the_problem(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text(TOML.replace('price = "number"', 'price = "money"'))
    with pytest.raises(ConfigError, match=r"metadata\.price"):
        load_config(path)
    path.write_text("name = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


@pytest.mark.parametrize("template", ["{title:.2f}", "{title!r}", "{title.upper}", "{0}", "{}"])
def test_template_placeholders_must_be_plain_names(tmp_path: Path, template: str):
    path = tmp_path / "c.toml"
    path.write_text(TOML.replace("{title}: {description}", template))
    with pytest.raises(ConfigError, match="plain field name"):
        load_config(path)


GROUPED = TOML + '\n[source]\ngroup_by = "key"\n'


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[fields]\nkey = { from = ["Parent", { template = "id" }] }\n', r"template 'id' names no field"),
        ('[fields]\nkey = { from = ["Parent", { template = "id:{ID!r}" }] }\n', r"placeholder \{ID\} must be"),
        ('[fields]\nkey = { from = ["Parent", ""] }\n', "an alternative of from is an empty path"),
        ("[fields]\nkey = { from = [] }\n", r"fields\.key\.from"),
        ('[fields]\nkey = { from = ["Parent", { path = "ID" }] }\n', r"fields\.key\.from"),
        ('[fields]\nkey = { from = "SKU", aggregate = "first" }\n', "group_by field is computed from each row alone"),
    ],
)
def test_a_derived_group_key_is_checked_when_the_config_loads(tmp_path: Path, extra: str, message: str):
    path = tmp_path / "c.toml"
    path.write_text(GROUPED + extra)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_alternatives_and_a_template_load(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text(GROUPED + '[fields]\nkey = { from = ["Parent", "SKU", { template = "id:{ID}" }] }\n')
    assert load_config(path).fields["key"].paths == ["Parent", "SKU", "ID"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("sorted = false", "source.sorted = false needs source.group_by"),
        ('variations = { field = "Type", value = "variation" }', "source.variations needs source.group_by"),
        ('variations = { field = "Type" }', r"source\.variations\.value"),
    ],
)
def test_sorted_and_variations_need_a_group_by(tmp_path: Path, source: str, message: str):
    path = tmp_path / "c.toml"
    path.write_text(TOML + f"\n[source]\n{source}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
