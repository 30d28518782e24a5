"""The Lambda dependency layer: built from layers/requirements.txt for python3.12 / arm64, with no Docker.

The layer is built once for the module (pip's cache makes it a few seconds). arm64 extensions cannot be imported on
this machine, so the arm64 build is checked by its files (ELF headers, dist-info, top-level packages), and the lock's
completeness by importing the handlers against the same lock built for the host's interpreter and architecture.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import platform
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "layers" / "requirements.txt"
FUNCTIONS = ROOT / "functions"
FUNCTION_PACKAGES = ("catalog_sync", "handlers")
EXCLUDED_FROM_ASSET = FUNCTIONS / "catalog_sync" / "adapters" / "embedders" / "static_minilm"

TOP_LEVEL = ("pydantic", "pydantic_core", "pydantic_settings", "yaml", "orjson", "xxhash", "ijson", "numpy")
TOP_LEVEL += ("pinecone", "openai")
MUST_MATCH_VENV = ("pydantic", "pydantic-core", "pydantic-settings", "numpy", "pinecone", "openai", "orjson")
CLI_ONLY = {"typer", "rich", "filelock"}  # the command line and its local state directory
# What Lambda's python runtime (boto3 and its deps) and the AWS Powertools layer put on sys.path.
PROVIDED_OUTSIDE_LAYER = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}
PROVIDED_OUTSIDE_LAYER |= {"aws_lambda_powertools", "aws_xray_sdk", "wrapt"}


def _load_build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layer_build", ROOT / "layers" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build_module()


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path = REQUIREMENTS) -> dict[str, str]:
    """name -> version of every `name==version` line (the lock's hash lines follow each one)."""
    found: dict[str, str] = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if match:
            found[normalise(match.group(1))] = match.group(2)
    return found


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def function_code_size() -> int:
    total = 0
    for package in FUNCTION_PACKAGES:
        for path in (FUNCTIONS / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and not path.is_relative_to(EXCLUDED_FROM_ASSET):
                total += path.stat().st_size
    return total


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("layer")
    build.build_layer(output, requirements=REQUIREMENTS, architecture="arm64", python_version="3.12")
    return output / "python"


# ---- no build needed


def test_lock_pins_the_versions_the_tests_run_with() -> None:
    locked = pins()
    installed = {normalise(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    for name in MUST_MATCH_VENV:
        assert name in installed, f"{name} is not installed in the test environment"
    mismatched = {n: (v, installed.get(n)) for n, v in locked.items() if installed.get(n) != v}
    assert not mismatched, f"layer pins differ from the test environment (locked, installed): {mismatched}"


def runtime_specs() -> list[str]:
    """pyproject's dependencies plus the openai and pinecone extras, without the CLI-only ones."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *project["optional-dependencies"]["openai"]]
    specs += project["optional-dependencies"]["pinecone"]
    return [spec for spec in specs if normalise(Requirement(spec).name) not in CLI_ONLY]


def test_lock_covers_the_runtime_dependencies() -> None:
    runtime = {normalise(Requirement(spec).name) for spec in runtime_specs()}
    missing = runtime - pins().keys()
    assert not missing, f"runtime dependencies missing from layers/requirements.txt: {sorted(missing)}"
    assert not {"boto3", "botocore", "aws-lambda-powertools"} & pins().keys(), "provided by the runtime / Powertools"


def test_native_check_rejects_the_wrong_machine(tmp_path: Path) -> None:
    elf_x86_64 = b"\x7fELF\x02\x01\x01" + bytes(11) + (62).to_bytes(2, "little") + bytes(44)
    (tmp_path / "ext.cpython-312-x86_64-linux-gnu.so").write_bytes(elf_x86_64)
    assert build.check_native(tmp_path, "x86_64")
    with pytest.raises(SystemExit, match="not aarch64"):
        build.check_native(tmp_path, "arm64")


# ---- the arm64 layer


def test_layer_and_function_code_fit_lambdas_unzipped_limit(layer: Path) -> None:
    layer_bytes = build.directory_size(layer.parent)
    total = layer_bytes + function_code_size()
    assert layer_bytes <= build.DEFAULT_MAX_MB * 1024 * 1024
    assert total < build.LAMBDA_UNZIPPED_LIMIT_BYTES, f"{total / 2**20:.1f} MB unzipped"


def test_every_native_extension_is_aarch64(layer: Path) -> None:
    libraries = build.check_native(layer, "arm64")  # raises on any non-aarch64 ELF
    native = {"pydantic_core", "yaml", "orjson", "xxhash", "ijson", "numpy", "numpy.libs", "pinecone", "jiter"}
    assert native <= {library.relative_to(layer).parts[0] for library in libraries}
    for library in libraries:
        assert build.elf_machine(library) == 183, library


def test_layer_holds_every_locked_distribution_and_package(layer: Path) -> None:
    shipped = {normalise(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=[str(layer)])}
    assert shipped == pins()
    for name in TOP_LEVEL:
        assert (layer / name / "__init__.py").is_file() or (layer / f"{name}.py").is_file(), name
    assert not list(layer.rglob("__pycache__")) and not list(layer.rglob("*.pyc"))
    assert not (layer / "bin").exists()


def test_lock_is_exactly_the_closure_of_the_runtime_dependencies(layer: Path) -> None:
    # Requires-Dist of the shipped wheels, markers evaluated for the target: every requirement is locked at a version
    # that satisfies it (an optional import such as openai's jiter or httpx[http2]'s h2 would pass the import test
    # below without it), and nothing in the lock is unreachable from the functions' direct dependencies.
    target = {**default_environment(), "python_version": "3.12", "python_full_version": "3.12.0"}
    target |= {"platform_machine": "aarch64", "sys_platform": "linux", "platform_system": "Linux"}
    dists = {normalise(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(layer)])}
    locked = pins()
    reachable: set[str] = set()
    todo = [Requirement(spec) for spec in runtime_specs()]
    while todo:
        requirement = todo.pop()
        name = normalise(requirement.name)
        assert name in locked, f"{requirement} is not in the lock"
        assert requirement.specifier.contains(locked[name], prereleases=True), f"{name}=={locked[name]}: {requirement}"
        if name in reachable and not requirement.extras:
            continue
        reachable.add(name)
        for spec in dists[name].requires or []:
            dependency = Requirement(spec)
            extras = {""} | requirement.extras
            if dependency.marker is None or any(dependency.marker.evaluate({**target, "extra": e}) for e in extras):
                todo.append(dependency)
    assert reachable == set(locked), f"locked but not needed: {sorted(set(locked) - reachable)}"


def test_rebuild_is_byte_identical(layer: Path, tmp_path: Path) -> None:
    # Cheap: the wheels come from pip's cache (a few seconds). Same relative paths, same bytes.
    build.build_layer(tmp_path, requirements=REQUIREMENTS)
    assert tree_digest(tmp_path / "python") == tree_digest(layer)
    build.build_layer(tmp_path, requirements=REQUIREMENTS)  # into an existing build: replaced, not merged
    assert tree_digest(tmp_path / "python") == tree_digest(layer)


# ---- the lock is complete: the handlers import from it alone (built for this host, where it can be imported)

HOST_ARCHITECTURE = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine())

_IMPORT_PROBE = """
import importlib, json, sys
layer, functions, provided = sys.argv[1:4]
sys.path[:0] = [layer, functions]
sys.path.append(provided)  # stands in for the runtime's boto3 and the Powertools layer
for name in sys.argv[4:]:
    importlib.import_module(name)
from openai import OpenAI
from pinecone import Pinecone
files = [(name, getattr(module, "__file__", None) or "") for name, module in list(sys.modules.items())]
print(json.dumps(sorted({name.split(".")[0] for name, file in files if file.startswith(provided)})))
"""


@pytest.mark.skipif(sys.platform != "linux" or HOST_ARCHITECTURE is None, reason="needs a manylinux host")
def test_handlers_import_from_the_lock_alone(tmp_path: Path) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    build.build_layer(tmp_path, requirements=REQUIREMENTS, architecture=HOST_ARCHITECTURE, python_version=version)
    provided = next(Path(p) for p in sys.path if p.endswith("site-packages") and (Path(p) / "boto3").is_dir())
    handlers = sorted(f"handlers.{p.stem}" for p in (FUNCTIONS / "handlers").glob("*.py") if p.stem != "__init__")
    modules = [*TOP_LEVEL, *handlers]
    modules += ["catalog_sync.adapters.embedders.openai", "catalog_sync.adapters.pinecone.index"]
    command = [sys.executable, "-I", "-S", "-c", _IMPORT_PROBE, str(tmp_path / "python"), str(FUNCTIONS)]
    result = subprocess.run([*command, str(provided), *modules], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    from_outside = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert from_outside <= PROVIDED_OUTSIDE_LAYER, f"imported from outside the layer: {from_outside}"
