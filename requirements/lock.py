#!/usr/bin/env python3
"""The project's lock: one resolution for the test environment, the demo and the Lambda layer.

    python requirements/lock.py            re-resolve after a change to pyproject.toml (keeps the pins that still fit)
    python requirements/lock.py --upgrade  re-resolve everything to the newest releases pyproject.toml allows
    python requirements/lock.py --check    fail, saying what to do, when pyproject.toml and the lock disagree

It writes three files, all exact pins with hashes, so ``pip install --require-hashes`` installs exactly what was
tested, however long after:

- ``requirements/dev.txt``: every extra (the local embedded default, the AWS pipeline, the CDK app, the tests),
  resolved by pip-tools for the development interpreter (CPython 3.11 on Linux; ``torch`` is the CPU build);
- ``requirements/local.txt``: the subset the demo needs (the core and the ``local`` extra), constrained to the
  versions of ``dev.txt``;
- ``layers/requirements.txt``: the Lambda layer (CPython 3.12 on manylinux aarch64), the closure of the functions'
  runtime dependencies resolved by pip for that target, again constrained to ``dev.txt``: a package the layer would
  need at a version the tests do not run is refused.

Each file starts with the digest of pyproject.toml's dependency tables; ``--check`` (standard library only, so it
runs before anything is installed) compares it. The resolvers come from the development environment (pip-tools is a
dev dependency), so run this with ``.venv/bin/python``; ``make lock`` does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
DEV_LOCK = ROOT / "requirements" / "dev.txt"
LOCAL_LOCK = ROOT / "requirements" / "local.txt"
LAYER_LOCK = ROOT / "layers" / "requirements.txt"
LOCKS = (DEV_LOCK, LOCAL_LOCK, LAYER_LOCK)

DIGEST_LINE = "# pyproject.toml dependencies sha256: "
# The layer carries what the functions import at run time, less what Lambda's runtime provides (boto3 and its
# dependencies), the AWS-published Powertools layer, and the CLI-only packages.
LAYER_EXTRAS = ("openai", "pinecone")
CLI_ONLY = frozenset({"typer", "rich", "filelock"})  # the command line and its local state directory
LAYER_PYTHON = "3.12"
LAYER_PLATFORMS = (
    "manylinux_2_34_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_17_aarch64",
    "manylinux2014_aarch64",
)

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_digest(pyproject: Path = PYPROJECT) -> str:
    """What the lock depends on in pyproject.toml: the dependency tables, the Python range and the build system."""
    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    project = data.get("project", {})
    relevant = {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "build-system": data.get("build-system", {}).get("requires", []),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    for line in lock.read_text(encoding="utf-8").splitlines():
        if line.startswith(DIGEST_LINE):
            return line.removeprefix(DIGEST_LINE).strip()
    return None


def check() -> list[str]:
    """What disagrees between pyproject.toml and the lock files (empty when they agree)."""
    expected = dependency_digest()
    problems = []
    for lock in LOCKS:
        name = lock.relative_to(ROOT)
        if not lock.is_file():
            problems.append(f"{name} is missing")
        elif recorded_digest(lock) != expected:
            problems.append(f"{name} was not made from this pyproject.toml's dependencies")
    return problems


def pinned_blocks(lock_text: str) -> dict[str, tuple[str, str]]:
    """name -> (version, the pin's whole block: the `name==version` line and its hash lines)."""
    blocks: dict[str, tuple[str, str]] = {}
    lines = lock_text.splitlines()
    for index, line in enumerate(lines):
        match = _PIN.match(line)
        if not match:
            continue
        block = [line]
        for follower in lines[index + 1 :]:
            if not follower.startswith("    --hash="):
                break
            block.append(follower)
        blocks[normalise(match.group(1))] = (match.group(2), "\n".join(block).rstrip(" \\"))
    return blocks


def constraints_file(blocks: dict[str, tuple[str, str]], directory: Path) -> Path:
    path = directory / "constraints.txt"
    path.write_text("".join(f"{name}=={version}\n" for name, (version, _) in sorted(blocks.items())))
    return path


def pip_compile(output: Path, extras: list[str], *, constraints: Path | None, upgrade: bool) -> None:
    command = [sys.executable, "-m", "piptools", "compile", "--quiet", "--generate-hashes", "--allow-unsafe"]
    command += ["--strip-extras", "--no-emit-index-url", "--no-emit-find-links", "--no-emit-trusted-host"]
    # --build-deps-for=editable: setuptools and wheel too, so that the project installs with --no-build-isolation
    # (nothing unpinned is fetched to build it).
    command += ["--no-header", "--build-deps-for=editable", "--output-file", str(output)]
    command += [arg for extra in extras for arg in ("--extra", extra)]
    if constraints is not None:
        command += ["--constraint", str(constraints)]
    if upgrade:
        command.append("--upgrade")
    subprocess.run([*command, PYPROJECT.name], check=True, cwd=ROOT)  # relative: the annotations name no machine path
    if constraints is not None:  # "via -c <scratch file>" names what the scratch file stands for
        output.write_text(output.read_text().replace(str(constraints), DEV_LOCK.relative_to(ROOT).as_posix()))


def layer_roots() -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    specs = [*project["dependencies"]]
    for extra in LAYER_EXTRAS:
        specs += project["optional-dependencies"][extra]
    return [spec for spec in specs if normalise(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) not in CLI_ONLY]


def resolve_layer(constraints: Path, directory: Path) -> dict[str, str]:
    """The layer's closure for its target, as pip resolves it there: name -> version."""
    report = directory / "layer-report.json"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed"]
    command += ["--report", str(report), "--target", str(directory / "target"), "--only-binary=:all:"]
    command += [
        "--implementation",
        "cp",
        "--python-version",
        LAYER_PYTHON,
        "--abi",
        "cp" + LAYER_PYTHON.replace(".", ""),
    ]
    for platform in LAYER_PLATFORMS:
        command += ["--platform", platform]
    command += ["--constraint", str(constraints), *layer_roots()]
    subprocess.run(command, check=True, cwd=ROOT)
    installs = json.loads(report.read_text())["install"]
    return {normalise(item["metadata"]["name"]): item["metadata"]["version"] for item in installs}


def write_lock(path: Path, title: str, body: str, digest: str) -> None:
    header = [f"# {line}" if line else "#" for line in title.splitlines()]
    header += ["# Made by `make lock` (requirements/lock.py): do not edit by hand.", f"{DIGEST_LINE}{digest}", ""]
    path.write_text("\n".join(header) + "\n" + body.strip() + "\n", encoding="utf-8")


def strip_header(lock: Path) -> str:
    """pip-compile's output without the lines this script adds (so that the next run sees only pins)."""
    lines = lock.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("#") or line.startswith("    # "))


def lock(*, upgrade: bool) -> None:
    digest = dependency_digest()
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    all_extras = sorted(project.get("optional-dependencies", {}))
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        dev_out = directory / "dev.txt"
        if DEV_LOCK.is_file() and not upgrade:  # pip-compile keeps the pins of its output file that still fit
            dev_out.write_text(strip_header(DEV_LOCK))
        pip_compile(dev_out, all_extras, constraints=None, upgrade=upgrade)
        dev_text = dev_out.read_text()
        blocks = pinned_blocks(dev_text)
        if "catalog-sync" in blocks or "catalog-sync @" in dev_text:
            raise SystemExit("the lock names the project itself: an extra must not depend on catalog-sync")
        constraints = constraints_file(blocks, directory)

        local_out = directory / "local.txt"
        pip_compile(local_out, ["local"], constraints=constraints, upgrade=False)
        local_text = local_out.read_text()

        layer = resolve_layer(constraints, directory)
        strays = {name: version for name, version in layer.items() if blocks.get(name, ("",))[0] != version}
        if strays:
            raise SystemExit(f"the layer needs releases the development lock does not pin: {strays}")
        layer_body = "\n".join(blocks[name][1] for name in sorted(layer))

    write_lock(
        DEV_LOCK,
        "Every extra of catalog-sync (the tests' environment), for CPython 3.11+ on Linux.\n"
        "Installed by `make test`: pip install --require-hashes -r requirements/dev.txt",
        dev_text,
        digest,
    )
    write_lock(
        LOCAL_LOCK,
        "catalog-sync with the `local` extra (the embedded default), at the versions of requirements/dev.txt.\n"
        "Installed by `make demo`: pip install --require-hashes -r requirements/local.txt",
        local_text,
        digest,
    )
    write_lock(
        LAYER_LOCK,
        "The Lambda dependency layer: the closure of the functions' runtime dependencies (the core without the CLI,\n"
        f"and the {' and '.join(LAYER_EXTRAS)} extras), resolved for CPython {LAYER_PYTHON} on manylinux aarch64 at the"
        " versions of\nrequirements/dev.txt. Not here: boto3 and its dependencies (Lambda's runtime provides them) and"
        " aws-lambda-powertools\n(the AWS-published Powertools layer). Built by layers/build.py with --require-hashes.",
        layer_body,
        digest,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only check that the lock matches pyproject.toml")
    mode.add_argument("--upgrade", action="store_true", help="re-resolve every pin to the newest allowed release")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for problem in problems:
            print(f"lock out of date: {problem}", file=sys.stderr)
        if problems:
            print(
                "pyproject.toml's dependencies changed since the lock was made: run `make lock` and commit "
                "requirements/ and layers/requirements.txt",
                file=sys.stderr,
            )
            return 1
        return 0
    lock(upgrade=args.upgrade)
    print("locked: " + ", ".join(str(path.relative_to(ROOT)) for path in LOCKS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
