"""How the field check (the config's names that no record has) is shown: Rich lines, or JSON under stable keys."""

from __future__ import annotations

from typing import Any

from rich.markup import escape

from catalog_sync.cli.console import out
from catalog_sync.logic.field_check import FieldCheckReport, Severity


def config_check_json(check: FieldCheckReport | None) -> dict[str, Any]:
    """`config_warnings`: every problem (errors too, each with its severity); `config_check`: what was seen."""
    if check is None:
        return {"config_warnings": [], "config_check": None}
    seen = check.model_dump(mode="json", exclude={"problems"})
    return {"config_warnings": [problem.model_dump(mode="json") for problem in check.problems], "config_check": seen}


def print_config_problems(check: FieldCheckReport | None) -> None:
    if check is None:
        return
    if check.preset_fields_absent:
        names = ", ".join(check.preset_fields_absent)
        out.print(
            f"[dim]preset {escape(check.preset or '')}: no record has {escape(names)} (optional: those fields stay"
            " empty)[/]",
            soft_wrap=True,
            highlight=False,
        )
    for problem in check.problems:
        label = "[bold red]error:[/]" if problem.severity is Severity.ERROR else "[bold yellow]warning:[/]"
        # One line however long: the names in it are what the user copies into the config.
        out.print(f"{label} {escape(problem.message)}", soft_wrap=True, highlight=False)
