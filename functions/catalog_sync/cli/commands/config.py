"""`config show`: the settings a catalog runs with, its preset's merged in; `config presets`: the presets."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml

from catalog_sync.cli import state
from catalog_sync.cli.application import command
from catalog_sync.cli.console import out, write_json
from catalog_sync.cli.errors import CommandError, ExitCode
from catalog_sync.cli.options import ConfigOption, JsonOption
from catalog_sync.models.config import ConfigError, load_preset, preset_names

config_app = typer.Typer(
    name="config", help="A catalog's configuration and the presets.", no_args_is_help=True, add_completion=False
)


def _print(settings: dict[str, Any], header: str, json_output: bool) -> None:
    if json_output:
        write_json(settings)
        return
    # YAML is a config format catalog-sync reads: what is shown can be saved and edited as it is.
    out.print(f"# {header}", highlight=False, soft_wrap=True)
    out.print(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True).rstrip(), highlight=False, markup=False)


@command
def show(
    config: ConfigOption = None,
    json_output: JsonOption = False,
    preset: Annotated[
        str | None, typer.Option("--preset", help="Show this preset's settings alone, without a catalog's file.")
    ] = None,
) -> ExitCode:
    """The settings a catalog sets: its file over its preset, the environment's CATALOG_SYNC_* over both (the
    defaults of what none of them sets are not shown)."""
    if preset is not None:
        try:
            settings = load_preset(preset)
        except ConfigError as exc:
            raise CommandError(str(exc), ExitCode.BAD_INPUT) from exc
        _print(settings, f"preset {preset}: a catalog's file extends it with preset = {preset!r}", json_output)
        return ExitCode.OK
    loaded = state.load(config, None)
    origin = f"its file over preset {loaded.preset!r}" if loaded.preset else "its file"
    # Only what the file, its preset and the environment set: a default written out would load back as a setting
    # someone chose (a config naming its embedder's kind is held to it; written priority fields are checked).
    settings = loaded.model_dump(mode="json", by_alias=True, exclude_unset=True)
    _print(
        settings,
        f"catalog {loaded.name}: {origin}, CATALOG_SYNC_* applied (defaults not shown)",
        json_output,
    )
    return ExitCode.OK


@command
def presets(json_output: JsonOption = False) -> ExitCode:
    """The presets a catalog's file can extend (`preset = "<name>"`)."""
    names = preset_names()
    if json_output:
        write_json({"presets": names})
    else:
        for name in names:
            out.print(name, highlight=False)
    return ExitCode.OK


config_app.command("show")(show)
config_app.command("presets")(presets)
