#!/usr/bin/env python3
"""Build the Lambda dependency layer (``python/`` tree) from the exact-pinned lock, without Docker.

The functions run on Lambda's python3.12 runtime: Amazon Linux 2023 (glibc 2.34) on arm64 (Graviton). No Docker
build image is needed because nothing is compiled here: pip is told the *target* interpreter and platform and takes
only binary wheels built for it (``--only-binary=:all:`` with ``--platform manylinux_*_aarch64``), so a build on an
x86_64 laptop or CI gives the same files as one on arm64. ``--no-deps`` because the requirements file is a full lock,
and ``--require-hashes`` because it carries each release's hashes (made by ``make lock``: requirements/lock.py).

The result is checked before it can be shipped: every native library must be an ELF for the target machine, and the
unzipped size must leave room for the function code under Lambda's 250 MB limit.

    python layers/build.py --output layers/build/dependencies [--architecture arm64|x86_64] [--max-mb 240]

Standard library only; runs with any python3.11+ that has pip.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024
DEFAULT_MAX_MB = 240  # the layer's share of the limit; the rest is for the function code
DEFAULT_REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"

# Newest glibc first; pip also accepts the older manylinux tags below each one. AL2023 has glibc 2.34.
_GLIBC_TAGS = ("manylinux_2_34", "manylinux_2_28", "manylinux_2_17", "manylinux2014")
_ELF_MACHINES = {"arm64": (183, "aarch64"), "x86_64": (62, "x86_64")}  # ELF e_machine per Lambda architecture
_PRUNE_DIRS = ("__pycache__",)
_PRUNE_SUFFIXES = (".pyc", ".pyo")


def platform_tags(architecture: str) -> list[str]:
    _, machine = _ELF_MACHINES[architecture]
    return [f"{tag}_{machine}" for tag in _GLIBC_TAGS]


def pip_install(site: Path, requirements: Path, architecture: str, python_version: str) -> None:
    abi = "cp" + python_version.replace(".", "")
    command = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--root-user-action=ignore", "-q"]
    command += ["--no-deps", "--require-hashes", "--no-compile", "--only-binary=:all:", "--implementation", "cp"]
    command += ["--python-version", python_version, "--abi", abi]
    for tag in platform_tags(architecture):
        command += ["--platform", tag]
    command += ["--target", str(site), "-r", str(requirements)]
    subprocess.run(command, check=True)


def prune(site: Path) -> None:
    """Drop what Lambda never uses: bytecode caches (rebuilt in /tmp as needed) and console scripts (``bin/``)."""
    shutil.rmtree(site / "bin", ignore_errors=True)  # entry-point scripts, with this machine's python in the shebang
    for path in sorted(site.rglob("*"), reverse=True):
        if path.is_dir() and path.name in _PRUNE_DIRS:
            shutil.rmtree(path)
        elif path.is_file() and path.suffix in _PRUNE_SUFFIXES:
            path.unlink()


def elf_machine(path: Path) -> int | None:
    """The ELF header's e_machine, or None if the file is not an ELF."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")  # EI_DATA: 1 = little-endian


def is_shared_library(path: Path) -> bool:
    return path.suffix == ".so" or ".so." in path.name  # foo.so, libgfortran-1234.so.5.0.0


def check_native(site: Path, architecture: str) -> list[Path]:
    """Every shared library (and any other ELF) must be built for the target machine; returns the libraries."""
    expected, machine = _ELF_MACHINES[architecture]
    libraries, wrong = [], []
    for path in sorted(p for p in site.rglob("*") if p.is_file() and not p.is_symlink()):
        found = elf_machine(path)
        if found is None and not is_shared_library(path):
            continue
        if is_shared_library(path):
            libraries.append(path)
        if found != expected:
            wrong.append(f"{path.relative_to(site)} (e_machine={found})")
    if wrong:
        raise SystemExit(f"layer has native files that are not {machine} ELF:\n  " + "\n  ".join(wrong))
    return libraries


def directory_size(path: Path) -> int:
    """Bytes of all regular files under path: what Lambda counts as unzipped size."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())


def build_layer(
    output: Path,
    *,
    requirements: Path = DEFAULT_REQUIREMENTS,
    architecture: str = "arm64",
    python_version: str = "3.12",
) -> int:
    """Build the layer into ``output/python`` (replacing a previous build) and return its unzipped size in bytes."""
    if architecture not in _ELF_MACHINES:
        raise ValueError(f"architecture must be one of {sorted(_ELF_MACHINES)}, not {architecture!r}")
    output = Path(output)
    strays = sorted(p.name for p in output.iterdir() if p.name != "python") if output.is_dir() else []
    if strays:  # refuse rather than delete a directory that is not a layer build
        raise SystemExit(f"{output} holds more than a layer build ({', '.join(strays[:5])}); choose an empty dir")
    site = output / "python"
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    pip_install(site, Path(requirements), architecture, python_version)
    prune(site)
    check_native(site, architecture)
    return directory_size(output)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True, help="layer directory (gets a python/ folder)")
    parser.add_argument("--requirements", type=Path, default=DEFAULT_REQUIREMENTS)
    parser.add_argument("--architecture", choices=sorted(_ELF_MACHINES), default="arm64")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--max-mb", type=float, default=DEFAULT_MAX_MB, help="fail above this unzipped size")
    args = parser.parse_args(argv)

    size = build_layer(
        args.output,
        requirements=args.requirements,
        architecture=args.architecture,
        python_version=args.python_version,
    )
    mb = size / 1024 / 1024
    print(f"layer {args.output} ({args.architecture}, python {args.python_version}): {mb:.1f} MB unzipped")
    if mb > args.max_mb:
        print(f"error: layer is {mb:.1f} MB unzipped, over the {args.max_mb:g} MB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
