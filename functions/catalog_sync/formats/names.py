"""Suggesting the name a user meant: a config's field name against the names a catalog really has."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

MAX_SUGGESTIONS = 3


def _loose(name: str) -> str:
    # "SKU", "sku", "variant_price" and "Variant Price" are one name to a person typing it.
    return "".join(ch for ch in name.casefold() if ch not in " _-")


def close_names(wanted: str, names: Iterable[str], limit: int = MAX_SUGGESTIONS) -> list[str]:
    """The names closest to `wanted`, best first: those equal to it but for case, spaces, '_' and '-', then
    difflib's close matches."""
    candidates = sorted({name for name in names if name != wanted})
    loose = _loose(wanted)
    found = [name for name in candidates if _loose(name) == loose]
    by_casefold: dict[str, list[str]] = {}
    for name in candidates:
        by_casefold.setdefault(name.casefold(), []).append(name)
    for match in difflib.get_close_matches(wanted.casefold(), by_casefold, n=limit, cutoff=0.6):
        found += [name for name in by_casefold[match] if name not in found]
    return found[:limit]


def did_you_mean(suggestions: list[str]) -> str:
    """ "; did you mean 'a' or 'b'?", or nothing without a suggestion."""
    if not suggestions:
        return ""
    quoted = [repr(name) for name in suggestions]
    options = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f"; did you mean {options}?"
