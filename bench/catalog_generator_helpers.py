"""Helpers for tests and benchmarks: write a generated v1/v2 catalog pair with its recorded change set."""

from __future__ import annotations

from pathlib import Path

from catalog_gen import generate, mutate, write_jsonl


def catalog_pair(directory: Path, n: int, seed: int = 7) -> tuple[Path, Path, dict[str, list[str]]]:
    v1 = list(generate(n, seed))
    v2, changes = mutate(v1, seed + 1)
    v1_path, v2_path = directory / "v1.jsonl", directory / "v2.jsonl"
    write_jsonl(v1_path, v1)
    write_jsonl(v2_path, v2)
    return v1_path, v2_path, changes
