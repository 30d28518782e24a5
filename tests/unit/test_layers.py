"""The layers' import rules (ARCHITECTURE.md): each package imports only what its layer may, read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "functions" / "catalog_sync"
CLOUD_SDKS = ("boto3", "botocore", "aws_lambda_powertools", "pinecone", "openai", "lancedb", "sqlite3")
OUTER = ("catalog_sync.adapters", "catalog_sync.services", "catalog_sync.bootstrap", "catalog_sync.cli")

# What each layer must not import (by module-name prefix).
FORBIDDEN = {
    "logic": (*OUTER, *CLOUD_SDKS),
    "formats": (*OUTER, *CLOUD_SDKS),
    "models": (*OUTER, *CLOUD_SDKS),
    "ports.py": (*OUTER, *CLOUD_SDKS),
    "services": ("catalog_sync.adapters", "catalog_sync.bootstrap", "catalog_sync.cli", *CLOUD_SDKS),
    "adapters": ("catalog_sync.services", "catalog_sync.bootstrap", "catalog_sync.cli"),
    "resilience": OUTER,
}


def imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
    return names


def offenders(layer: str, package: Path = PACKAGE) -> list[str]:
    root = package / layer
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    assert files, f"no source under {root}"
    found = []
    for path in files:
        for name in imported_modules(path):
            if any(name == banned or name.startswith(banned + ".") for banned in FORBIDDEN[layer]):
                found.append(f"{path.relative_to(package)} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_only_what_it_may(layer: str):
    assert offenders(layer) == []


def test_the_check_sees_a_forbidden_import(tmp_path: Path):
    (tmp_path / "services").mkdir()
    (tmp_path / "services" / "bad.py").write_text(
        "from catalog_sync.models.changes import Change\nfrom catalog_sync.adapters.local.files import x\n"
        "import boto3.session\nimport boto3x\n"
    )
    assert offenders("services", tmp_path) == [
        "services/bad.py imports catalog_sync.adapters.local.files",
        "services/bad.py imports boto3.session",
    ]
