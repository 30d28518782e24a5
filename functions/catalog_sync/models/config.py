"""Catalog configuration: one model per catalog, loaded from TOML or YAML with environment overrides."""

from __future__ import annotations

import re
import string
import tomllib
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

ENV_PREFIX = "CATALOG_SYNC_"
DEFAULT_PRIORITY_FIELDS = ("price", "availability", "stock")
# Pinecone's documented limit for the metadata of one vector, less room for catalog-sync's own keys
# (the text hash) so that a valid record always fits.
PINECONE_METADATA_LIMIT_BYTES = 40 * 1024
CATALOG_METADATA_LIMIT_BYTES = PINECONE_METADATA_LIMIT_BYTES - 256
# A metadata (or derived) field's name: a plain key every index stores as it is (LanceDB's typed column
# meta_<name> refuses '.', Pinecone, Qdrant and pgvector filters want plain keys).
FIELD_NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
FIELD_NAME_RULE = "a letter, then letters, digits or '_', at most 64 characters"


class ConfigError(ValueError):
    """The catalog configuration cannot be loaded or is inconsistent."""


class FieldType(StrEnum):
    """Types a metadata field may have; they are the value types Pinecone metadata accepts."""

    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    STRING_LIST = "string_list"


class EmbedderKind(StrEnum):
    MINILM = "minilm"
    MINILM_STATIC = "minilm-static"
    HASHING = "hashing"
    OPENAI = "openai"


class IndexKind(StrEnum):
    """The vector indexes a composition root may build (bootstrap/registry.py): the CLI's is LanceDB, the
    deployed pipeline's Pinecone."""

    PINECONE = "pinecone"
    LANCEDB = "lancedb"


class TextSpec(BaseModel):
    """How the embedding text of a product is built."""

    model_config = ConfigDict(extra="forbid")

    fields: list[str] = Field(min_length=1)
    # A str.format template with one {placeholder} per field, e.g. "{title}\n{description}".
    # Without one, the non-empty field values are joined with `separator`.
    template: str | None = None
    separator: str = "\n"
    max_chars: int = Field(default=24_000, gt=0)

    @model_validator(mode="after")
    def _template_uses_known_fields(self) -> TextSpec:
        if self.template is None:
            return self
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as exc:
            raise ValueError(f"text.template is not a valid template: {exc}") from exc
        names = set()
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            # Values are rendered to text before formatting: a format spec ({price:.2f}) cannot apply.
            if spec or conversion or not name.isidentifier():
                raise ValueError(f"text.template placeholder {{{name}}} must be a plain field name, like {{title}}")
            names.add(name)
        unknown = names - set(self.fields)
        if unknown:
            raise ValueError(f"text.template uses fields not listed in text.fields: {sorted(unknown)}")
        return self

    def fingerprint(self) -> str:
        """Identifies how text is built, so that changing it re-embeds everything."""
        if self.template is not None:
            return f"template:{self.template}"
        return f"join:{self.separator!r}:{','.join(self.fields)}"


class EmbedderSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: EmbedderKind = EmbedderKind.MINILM
    # OpenAI model and dimensions; ignored by the local embedders, which have fixed models.
    openai_model: str = "text-embedding-3-small"
    openai_dimensions: int | None = Field(default=None, gt=0)
    openai_base_url: str | None = None
    hashing_dimensions: int = Field(default=384, gt=0)
    batch_size: int = Field(default=128, gt=0)


class GuardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A run that would delete more than this share of the indexed products is held back.
    max_delete_share: float = Field(default=0.2, ge=0.0, le=1.0)
    # An empty catalog is held back unless this is set (or the run is forced).
    allow_empty_catalog: bool = False


class CsvSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    # string_list fields arrive in CSV as one cell; this splits it.
    list_separator: str = Field(default="|", min_length=1)


class RowMatch(BaseModel):
    """Rows whose `field` is `value` (trimmed, exactly)."""

    model_config = ConfigDict(extra="forbid")

    field: str = Field(min_length=1)
    value: str = Field(min_length=1)


class SourceSettings(BaseModel):
    """Where a catalog's records are in the file, and how its rows form products."""

    model_config = ConfigDict(extra="forbid")

    # Where the records are, as a dotted path: of keys to the array inside a JSON object ("products",
    # "data.items"), for an API response that wraps its array; of element names to the record elements of XML
    # ("catalog.product"). Unset, a JSON file is the array itself and XML is an RSS 2.0 (rss.channel.item) or Atom
    # (feed.entry) feed. JSON Lines and delimited files have one record per line and ignore it.
    records: str | None = Field(default=None, min_length=1)
    # Consecutive records sharing this field's value are one product (Shopify's one row per variant under a
    # Handle); unset, every record is a product. It may name a derived field, computed from each row alone.
    group_by: str | None = Field(default=None, min_length=1)
    # False: the rows of one key may be anywhere in the file (WooCommerce orders its export by ID, so a variation
    # added later sits far from its parent); they are joined through temporary files, in bounded memory.
    sorted: bool = True
    # Rows matching this are variations of their group's product: each group has one other row, the product's own,
    # read first (its id, its fields); a group with none (a variation whose parent is not in the file) is
    # quarantined.
    variations: RowMatch | None = None

    @field_validator("records")
    @classmethod
    def _records_is_a_path(cls, value: str | None) -> str | None:
        if value is not None and any(not part or part != part.strip() for part in value.split(".")):
            raise ValueError(f'records {value!r} must be a dotted path of names, like "products" or "data.items"')
        return value


class Aggregate(StrEnum):
    """How a derived field combines the values of a group's rows."""

    FIRST = "first"
    LAST = "last"
    LIST = "list"
    UNIQUE = "unique"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    ANY = "any"
    ALL = "all"


class Transform(StrEnum):
    """A text transform a derived field applies to its value."""

    HTML_TO_TEXT = "html_to_text"
    COLLAPSE_WHITESPACE = "collapse_whitespace"
    # The number a text starts with ("15.00 USD" is 15.0), and the text after it ("USD"): Google Merchant's prices.
    NUMBER = "number"
    UNIT = "unit"


class FromTemplate(BaseModel):
    """An alternative of a derived field's `from`: text made of the row's values, "id:{ID}"; empty when a value
    it names is."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1)

    @field_validator("template")
    @classmethod
    def _plain_placeholders(cls, value: str) -> str:
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            raise ValueError(f"template {value!r} is not a valid template: {exc}") from exc
        names = [name for _, name, _, _ in parsed if name is not None]
        if not names:
            raise ValueError(f"template {value!r} names no field: write one as {{ID}}")
        for _, name, spec, conversion in parsed:
            if name is not None and (spec or conversion or not name or "[" in name):
                raise ValueError(
                    f"template {value!r}: placeholder {{{name}}} must be a field name or path, like {{ID}}"
                )
        return value

    def placeholders(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None]


class DerivedField(BaseModel):
    """A field computed from the record (or its group's rows), used like any record field."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    # A dotted path into the record: "meta.barcode", "images.0.src"; a plain column name works too. A list is
    # alternatives, per row: the first non-empty one is the row's value (["Parent", "SKU", {template="id:{ID}"}]).
    source: str | list[str | FromTemplate] = Field(alias="from", min_length=1)
    # Over a group's rows (with [source] group_by); unset, the first row's non-empty value.
    aggregate: Aggregate | None = None
    transform: list[Transform] = Field(default_factory=list)
    # A list value is joined into one string with this separator.
    join: str | None = None

    @field_validator("transform", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("transform")
    @classmethod
    def _a_number_is_last(cls, value: list[Transform]) -> list[Transform]:
        # The other transforms read text: nothing can follow one that makes a number.
        if Transform.NUMBER in value[:-1]:
            raise ValueError("the transform 'number' makes a number, not text: it must come last")
        return value

    @field_validator("source")
    @classmethod
    def _no_empty_path(cls, value: str | list[str | FromTemplate]) -> str | list[str | FromTemplate]:
        if isinstance(value, list) and any(isinstance(item, str) and not item for item in value):
            raise ValueError("an alternative of from is an empty path")
        return value

    @property
    def paths(self) -> list[str]:
        """Every record path it reads: its path, or its alternatives' paths and their templates' placeholders."""
        if isinstance(self.source, str):
            return [self.source]
        paths: list[str] = []
        for item in self.source:
            paths += [item] if isinstance(item, str) else item.placeholders()
        return list(dict.fromkeys(paths))


class CatalogConfig(BaseSettings):
    """Everything catalog-sync needs to know about one catalog."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    # The preset the file extends (load_config merged it in already); kept to say where the settings came from.
    preset: str | None = None
    id_field: str = "id"
    source: SourceSettings = Field(default_factory=SourceSettings)
    fields: dict[str, DerivedField] = Field(default_factory=dict)
    text: TextSpec
    metadata: dict[str, FieldType] = Field(default_factory=dict)
    required_fields: list[str] = Field(default_factory=list)
    priority_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_PRIORITY_FIELDS))
    namespace: str | None = None
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    guard: GuardSettings = Field(default_factory=GuardSettings)
    csv: CsvSettings = Field(default_factory=CsvSettings)
    max_metadata_bytes: int = Field(default=CATALOG_METADATA_LIMIT_BYTES, gt=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, init_settings)

    @field_validator("metadata")
    @classmethod
    def _metadata_names(cls, value: dict[str, FieldType]) -> dict[str, FieldType]:
        for name in value:
            if not FIELD_NAME_PATTERN.fullmatch(name):
                raise ValueError(
                    f"metadata field name {name!r} is not a plain name ({FIELD_NAME_RULE}); "
                    f"derive one from the record: {derived_field_hint(name)}, then name it in [metadata]"
                )
        return value

    @field_validator("fields")
    @classmethod
    def _derived_names(cls, value: dict[str, DerivedField]) -> dict[str, DerivedField]:
        for name in value:
            if not FIELD_NAME_PATTERN.fullmatch(name):
                raise ValueError(f"derived field name {name!r} is not a plain name ({FIELD_NAME_RULE})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CatalogConfig:
        if self.id_field in self.metadata:
            raise ValueError(f"id_field {self.id_field!r} must not also be a metadata field")
        if self.id_field in self.fields:
            raise ValueError(
                f"fields.{self.id_field}: a derived field cannot be the id_field; the id is read from the record"
            )
        group_by = self.source.group_by
        if group_by is not None and group_by in self.fields and self.fields[group_by].aggregate is not None:
            raise ValueError(
                f"fields.{group_by}: the group_by field is computed from each row alone; remove its aggregate"
            )
        if self.source.variations is not None and group_by is None:
            raise ValueError("source.variations needs source.group_by: variations are rows of their product's group")
        if not self.source.sorted and group_by is None:
            raise ValueError("source.sorted = false needs source.group_by: it joins the rows of one key")
        return self

    @property
    def index_namespace(self) -> str:
        return self.namespace or self.name

    @property
    def tracked_fields(self) -> list[str]:
        """Fields whose change matters: the text fields, then the metadata fields."""
        seen = dict.fromkeys(self.text.fields)
        seen.update(dict.fromkeys(self.metadata))
        return list(seen)


def derived_field_hint(name: str) -> str:
    """The [fields] line that reads a column or a path `name` under a plain name: what to write instead."""
    last = name.rsplit(".", 1)[-1] if "." in name else name
    plain = re.sub(r"[^A-Za-z0-9]+", "_", last).strip("_").lower() or "field"
    if not plain[0].isalpha():
        plain = f"field_{plain}"
    return f"[fields] {plain[:64]} = {{ from = {_toml_string(name)} }}"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix in {".yaml", ".yml"}:
            data = yaml.safe_load(raw) or {}
        else:
            raise ConfigError(f"config {path} must be .toml, .yaml or .yml")
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config {path} is not valid {suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a table/mapping at the top level")
    # Allow the settings either at the top level or under a [catalog] table.
    catalog = data.get("catalog")
    if isinstance(catalog, dict) and set(data) == {"catalog"}:
        data = catalog
    return data


PRESETS_PACKAGE = "catalog_sync.presets"


def preset_names() -> list[str]:
    """The presets shipped with catalog-sync (`catalog_sync/presets/<name>.toml`)."""
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in resources.files(PRESETS_PACKAGE).iterdir()
        if entry.name.endswith(".toml")
    )


def load_preset(name: str) -> dict[str, Any]:
    """A preset's settings, as a table a catalog's own file extends."""
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown preset {name!r}; the presets are {', '.join(names)}")
    return tomllib.loads(resources.files(PRESETS_PACKAGE).joinpath(f"{name}.toml").read_text("utf-8"))


def extend_preset(preset: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """The catalog's own settings over its preset's: tables merge key by key (so one [metadata] type or one [text]
    key can be changed alone), and a [fields] entry replaces the preset's entry of that name whole."""
    merged = dict(preset)
    for key, value in own.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = {**below, **value} if key == "fields" else extend_preset(below, value)
        else:
            merged[key] = value
    return merged


def expand_preset(data: dict[str, Any]) -> dict[str, Any]:
    """A config's settings with its preset (if it names one) merged in under them."""
    name = data.get("preset")
    if name is None:
        return data
    if not isinstance(name, str):
        raise ConfigError(f"preset must be a name, got {name!r}")
    return extend_preset(load_preset(name), data)


def load_config(path: Path, **overrides: Any) -> CatalogConfig:
    """Load a catalog config file (and the preset it names); CATALOG_SYNC_* environment variables override its
    values."""
    data = _read_config_file(path)
    try:
        data = expand_preset(data)
    except ConfigError as exc:
        raise ConfigError(f"config {path}: {exc}") from exc
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return CatalogConfig(**data)
    except SettingsError as exc:
        raise ConfigError(f"a {ENV_PREFIX}* environment variable is invalid: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"config {path} is invalid: {problems}") from exc
