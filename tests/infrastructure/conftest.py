"""The stack synthesised offline, once per session: bundling skipped (the layer build has its own tests)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "infra" / "stack.toml"


def synth(config: Path = EXAMPLE_CONFIG, *, outdir: Path | None = None) -> tuple[Any, Any]:
    import aws_cdk as cdk
    from infra.app import build_app

    context: dict[str, Any] = {"aws:cdk:bundling-stacks": [], "config": str(config)}
    app = cdk.App(context=context, outdir=str(outdir) if outdir else None)
    build_app(app)
    [stack] = [child for child in app.node.children if isinstance(child, cdk.Stack)]
    return app, stack


@pytest.fixture(scope="session")
def stack() -> Any:
    return synth()[1]


@pytest.fixture(scope="session")
def template(stack: Any) -> Any:
    from aws_cdk.assertions import Template

    return Template.from_stack(stack)


@pytest.fixture(scope="session")
def resources(template: Any) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template.to_json()["Resources"]
    return resources
