"""Catalog configuration: one model per catalog, loaded from TOML or YAML with environment overrides."""

from __future__ import annotations

import os
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

from catalog_sync.models.mapping import DerivedField, SourceSettings

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
    # The environment overrides the file, its preset too: the preset it names is the one merged in.
    preset_from_env = os.environ.get(f"{ENV_PREFIX}PRESET")
    if preset_from_env:
        data = {**data, "preset": preset_from_env}
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
