"""The lock (requirements/dev.txt, requirements/local.txt, layers/requirements.txt): one resolution, installed exactly.

requirements/lock.py makes the files; these tests read them with packaging's parsers, not with the script's own, and
check what a fresh clone relies on: the environment the tests run in is the lock, every requirement of pyproject.toml
is met by it, the demo's and the layer's pins are the development pins, and a pyproject.toml changed after the lock
was made is caught (the check `make test` runs first) with a message saying what to run.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEV = ROOT / "requirements" / "dev.txt"
LOCAL = ROOT / "requirements" / "local.txt"
LAYER = ROOT / "layers" / "requirements.txt"
LOCKS = (DEV, LOCAL, LAYER)


def blocks(lock: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, hashes): each pin of a lock, with the hashes on its continuation lines."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    current: str | None = None
    for line in lock.read_text().splitlines():
        pin = re.match(r"^(\S+)==(\S+)", line)
        if pin:
            current = str(canonicalize_name(pin.group(1)))
            found[current] = (pin.group(2), frozenset())
        elif line.startswith("    --hash=") and current is not None:
            version, hashes = found[current]
            found[current] = (version, hashes | {line.split("=", 1)[1].rstrip(" \\")})
        elif line.strip() and not line.lstrip().startswith("#"):
            pytest.fail(f"{lock.name}: a line that is neither a pin, a hash nor a comment: {line!r}")
    return found


def test_every_pin_is_exact_and_hashed() -> None:
    for lock in LOCKS:
        pins = blocks(lock)
        assert pins, f"{lock.name} pins nothing"
        unhashed = sorted(name for name, (_, hashes) in pins.items() if not hashes)
        assert not unhashed, f"{lock.name}: pins without a hash: {unhashed}"
        assert "catalog-sync" not in pins, f"{lock.name} holds the project itself"


def test_the_test_environment_is_exactly_the_development_lock() -> None:
    installed = {str(canonicalize_name(d.metadata["Name"])): d.version for d in importlib.metadata.distributions()}
    locked = {name: version for name, (version, _) in blocks(DEV).items()}
    differing = {
        name: (version, installed.get(name)) for name, version in locked.items() if installed.get(name) != version
    }
    assert not differing, f"installed differs from requirements/dev.txt (locked, installed): {differing}"
    # Nothing installed beside the lock but the project (and pip's own, which venv puts there).
    extra = set(installed) - set(locked) - {"catalog-sync"}
    assert not extra, f"installed but not in the lock: {sorted(extra)}"


def test_the_demo_and_the_layer_pin_the_development_releases() -> None:
    development = blocks(DEV)
    for lock in (LOCAL, LAYER):
        for name, (version, hashes) in blocks(lock).items():
            assert name in development, f"{lock.name} pins {name}, which requirements/dev.txt does not"
            assert development[name] == (version, hashes), f"{lock.name}: {name}=={version} is not the dev pin"


def _requirements(extras: list[str] | None) -> list[tuple[Requirement, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    chosen = sorted(project["optional-dependencies"]) if extras is None else extras
    specs = [(spec, "") for spec in project["dependencies"]]
    specs += [(spec, extra) for extra in chosen for spec in project["optional-dependencies"][extra]]
    return [(Requirement(spec), extra) for spec, extra in specs]


@pytest.mark.parametrize(("lock", "extras"), [(DEV, None), (LOCAL, ["local"])])
def test_every_requirement_of_pyproject_is_met_by_the_lock(lock: Path, extras: list[str] | None) -> None:
    pins = {name: version for name, (version, _) in blocks(lock).items()}
    environment = default_environment()
    for requirement, extra in _requirements(extras):
        if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": extra}):
            continue
        name = str(canonicalize_name(requirement.name))
        assert name in pins, f"{lock.name} does not pin {requirement}"
        # A local version label (torch's +cpu build) satisfies the public version it labels.
        public = pins[name].split("+", 1)[0]
        assert requirement.specifier.contains(public, prereleases=True), (
            f"{name}=={pins[name]} does not meet {requirement}"
        )


def _copy_of_the_project(tmp_path: Path) -> Path:
    for relative in ("pyproject.toml", "requirements/lock.py", *(str(lock.relative_to(ROOT)) for lock in LOCKS)):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    return tmp_path


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-I", str(root / "requirements" / "lock.py"), "--check"]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_the_lock_was_made_from_this_pyproject() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, result.stderr


def test_a_changed_dependency_fails_the_check_with_what_to_run(tmp_path: Path) -> None:
    root = _copy_of_the_project(tmp_path)
    assert _check(root).returncode == 0
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    assert '"xxhash>=3.4,<5",' in text
    pyproject.write_text(text.replace('"xxhash>=3.4,<5",', '"xxhash>=3.5,<5",'))
    result = _check(root)
    assert result.returncode == 1
    assert "requirements/dev.txt was not made from this pyproject.toml's dependencies" in result.stderr
    assert "run `make lock`" in result.stderr


def test_an_unrelated_change_to_pyproject_needs_no_new_lock(tmp_path: Path) -> None:
    root = _copy_of_the_project(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("line-length = 120", "line-length = 119"))
    assert _check(root).returncode == 0


def test_a_missing_lock_fails_the_check(tmp_path: Path) -> None:
    root = _copy_of_the_project(tmp_path)
    (root / "requirements" / "local.txt").unlink()
    result = _check(root)
    assert result.returncode == 1 and "requirements/local.txt is missing" in result.stderr
