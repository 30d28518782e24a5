"""What the convergence property draws: catalog versions (ids, values at their edges, re-spellings) and the catalog
config of each example (tests/harness/convergence.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from tests.harness import reference_model as model
from tests.harness.reference_model import ModelConfig

CATALOG = "shop"
DIMENSIONS = 8
MAX_RECEIVE_COUNT = 3
# Ids beyond ASCII reach Pinecone under an encoded vector id (README: "Vector ids"); two drops within one second are
# ordered (README: "Same-second drops"). Either can be switched off (=0) to look at a failure without them.
NON_ASCII_IDS = os.environ.get("CONVERGENCE_NON_ASCII_IDS", "1") == "1"
SAME_SECOND_DROPS = os.environ.get("CONVERGENCE_SAME_SECOND", "1") == "1"

# ---------------------------------------------------------------- what is drawn

_METADATA = (("title", "string"), ("price", "number"), ("stock", "integer"), ("tags", "string_list"))
CONFIGS = {
    "joined": ModelConfig(
        text_fields=("title", "description"), metadata=_METADATA, max_chars=60, max_metadata_bytes=1000
    ),
    "template": ModelConfig(
        text_fields=("title", "description", "tags"),
        metadata=_METADATA,
        template="{title}: {description}\nTags: {tags}",
        required=("title",),
        max_chars=60,
        max_metadata_bytes=1000,
    ),
}
GUARDS = {"off": (1.0, True), "on at 25%": (0.25, False), "on at 50%": (0.5, False)}

# Ids that differ only in case are different products; ids that differ only in surrounding whitespace are not; an
# integer id is its digits. Blank and over-long ids are quarantined (no product is seen).
LONG_ID = "long-" + "x" * (model.MAX_ID_BYTES - 5)
ASCII_IDS = ["p0", "p1", "p2", "p3", "P0", " p1", "p2 ", "\tp3", 7, "7", LONG_ID, LONG_ID + "x", "   "]
# NFC and NFD spellings of one id, a Cyrillic look-alike of p1, an id of a zero-width space (empty), 512 bytes of
# two-byte characters and one character more.
NON_ASCII = [
    "café-1",
    "cafe\u0301-1",
    "ürün-7",
    "\u0440" + "1",
    "\u200b",
    "é" * (model.MAX_ID_BYTES // 2),
    "é" * (model.MAX_ID_BYTES // 2 + 1),
]
IDS = ASCII_IDS + (NON_ASCII if NON_ASCII_IDS else [])

# Texts around max_chars (60): "Lamp: " and 54 characters make 60 with the template; "Lamp\n" and 55 with a join.
EDGE = "e" * 54
# Tags over the config's max_metadata_bytes (1,000), by far.
HUGE_TAGS = ["t" * 100] * 15


def _common(values: list[Any], edges: list[Any]) -> st.SearchStrategy[Any]:
    """One of the common values, or one time in six an edge case."""
    return st.integers(0, 5).flatmap(lambda n: st.sampled_from(edges if n == 0 else values))


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "title": _common(["Lamp", "Desk lamp"], ["Cafe\u0301 lamp", "Café lamp", "  Lamp  ", "", None, 7]),
    "description": _common(
        ["warm light", "cold light", "a lamp for reading"],
        ["", None, EDGE, EDGE + "e", " warm light ", 12.0, "cafe\u0301 light", "café light"],
    ),
    "price": _common([10.0, 12.5], [10, "12.5", "ask us", None]),
    "stock": _common([0, 3], [3.0, "4", 2.5, None, True]),
    "tags": _common([["desk"], ["desk", "light"]], [[], ["cafe\u0301"], ["a", 3], None, HUGE_TAGS, "desk| light |"]),
}


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {}
    raw_id = draw(st.sampled_from(IDS), label="id")
    if draw(st.integers(0, 30), label="no id") > 0:
        record["sku"] = raw_id
    for name, strategy in FIELDS.items():
        if draw(st.integers(0, 9), label=f"{name} present") > 0:
            record[name] = draw(strategy, label=name)
    return record


def _respelled(record: dict[str, Any]) -> dict[str, Any]:
    """The same record written otherwise: its keys in reverse order, whole numbers as floats or ints."""

    def respelled(name: str, value: Any) -> Any:
        if type(value) is float and value.is_integer():
            return int(value)
        if type(value) is int and name != "sku":
            return float(value)
        return value

    return {name: respelled(name, value) for name, value in reversed(record.items())}


@st.composite
def next_version(draw: st.DrawFn, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A catalog a little different from the last, as a day's changes are: records kept (some written
    otherwise), edited, dropped, added."""
    version = []
    for record in previous:
        fate = draw(st.sampled_from(["kept", "kept", "kept", "respelled", "edited", "dropped"]), label="record")
        if fate == "kept":
            version.append(record)
        elif fate == "respelled":
            version.append(_respelled(record))
        elif fate == "edited":
            name = draw(st.sampled_from(sorted(FIELDS)), label="field edited")
            version.append({**record, name: draw(FIELDS[name], label=name)})
    version += draw(st.lists(records(), max_size=3), label="added")
    return version


@st.composite
def versions(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    drawn = [draw(st.lists(records(), max_size=7), label="v1")]
    for _ in range(draw(st.integers(0, 3), label="more versions")):
        fresh = draw(st.integers(0, 3), label="a fresh catalog") == 0
        drawn.append(draw(st.lists(records(), max_size=7) if fresh else next_version(drawn[-1])))
    return drawn


catalog_versions = versions()


def draw_config(draw: Callable[[st.SearchStrategy[Any], str], Any]) -> ModelConfig:
    from dataclasses import replace

    text = draw(st.sampled_from(sorted(CONFIGS)), "config")
    share, allow_empty = GUARDS[draw(st.sampled_from(["off", "off", "on at 25%", "on at 50%"]), "guard")]
    return replace(CONFIGS[text], max_delete_share=share, allow_empty_catalog=allow_empty)
