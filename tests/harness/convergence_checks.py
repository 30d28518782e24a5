"""The convergence property's checks: after an example, the index and the runs against what the reference model
allows (tests/harness/reference_model.py), and the description of an example that failed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from tests.doubles.aws_resources import BUCKET
from tests.doubles.openai_server import fake_vector
from tests.harness import reference_model as model
from tests.harness.convergence_draws import CATALOG, DIMENSIONS
from tests.harness.convergence_world import World
from tests.harness.reference_model import Entry, Expectation, Guard, ModelConfig

if TYPE_CHECKING:
    from tests.harness.convergence import Scenario


# ---------------------------------------------------------------- the checks


def expectation(scenario: Scenario) -> Expectation:
    # The model reads the catalog objects as written, as the product does.
    written = [[orjson.loads(orjson.dumps(record)) for record in records] for records in scenario.versions]
    return model.expect(scenario.config, written, overtakable=scenario.overtakable)


def embedded_texts(world: World) -> list[str]:
    """Every text the OpenAI double was asked to embed in this example."""
    texts: list[str] = []
    for request in world.openai.requests:
        inputs = request["body"]["input"]
        texts.extend(inputs if isinstance(inputs, list) else [inputs])
    return texts


@dataclass(frozen=True)
class Stored:
    """One vector of the index as the model's terms: the texts whose embedding (by the OpenAI double's own
    function) it is, among those the double was asked for, and the metadata fields of the config."""

    texts: frozenset[str]
    metadata: tuple[tuple[str, Any], ...]

    def holds(self, entry: Entry | None) -> bool:
        return entry is not None and entry.text in self.texts and entry.metadata == self.metadata

    def __str__(self) -> str:
        return f"{sorted(self.texts)} {dict(self.metadata)}"


def stored_vectors(world: World, config: ModelConfig) -> dict[str, Stored]:
    texts = set(embedded_texts(world))
    names = {name for name, _ in config.metadata}
    stored = {}
    for vector_id, vector in world.pinecone.vectors(CATALOG).items():
        values = np.asarray(vector["values"], dtype=np.float64)
        matching = frozenset(text for text in texts if np.allclose(values, fake_vector(text, DIMENSIONS), atol=1e-6))
        assert matching, f"{vector_id!r}: the stored vector is the embedding of no text the embedder was given"
        metadata = vector["metadata"]
        unknown = {name for name in metadata if name not in names and not name.startswith("_")}
        assert not unknown, f"{vector_id!r}: metadata fields the config does not name: {unknown}"
        fields = {name: tuple(value) if isinstance(value, list) else value for name, value in metadata.items()}
        stored[vector_id] = Stored(matching, tuple(sorted((k, v) for k, v in fields.items() if k in names)))
    return stored


def check_converged(world: World, scenario: Scenario) -> None:
    from catalog_sync.models.changes import RunStatus
    from handlers import _shared

    expected = expectation(scenario)
    stored = stored_vectors(world, scenario.config)
    pipeline = _shared.pipeline()
    state = pipeline.state(pipeline.config(CATALOG))
    assert state.pending_count() == 0, "products are still pending"
    # Committed products are in the index (a write reported done that did not land would show here first).
    assert state.product_count() == len(stored), (
        f"the state tracks {state.product_count()} products, the index holds {len(stored)}"
    )
    # Each stored vector is a product the model knows, by the vector id the README's rule gives it.
    products = {model.vector_id(pid): pid for pid in expected.allowed}
    orphans = sorted(set(stored) - set(products))
    assert not orphans, f"the index holds vectors of no product the catalog versions allow: {orphans}"
    vectors = world.pinecone.vectors(CATALOG)
    for vector_id, pid in sorted(products.items()):
        held = stored.get(vector_id)
        allowed = expected.allows(pid)
        if held is None:
            assert None in allowed, f"{pid!r} is not in the index; the catalog versions allow {_shown(allowed)}"
            continue
        assert any(held.holds(option) for option in allowed), (
            f"{pid!r}: the index holds {held}; the catalog versions allow {_shown(allowed)}"
        )
        if not model.passes_through(pid):
            kept = vectors[vector_id]["metadata"].get(model.ORIGINAL_ID_KEY)
            assert kept == pid, f"{vector_id!r}: the metadata keeps {kept!r} as the product id, not {pid!r}"

    # The runs: held exactly where the model says a drop is held, ended, their counters adding up.
    drops_of: dict[str, list[int]] = {}
    for number, key in enumerate(scenario.keys, start=1):
        drops_of.setdefault(f"s3://{BUCKET}/{key}", []).append(number)
    runs = state.runs(1000)
    held_sources = {run.source for run in runs if run.status is RunStatus.HELD}
    for number, decision in enumerate(expected.guard, start=1):
        source = f"s3://{BUCKET}/{scenario.keys[number - 1]}"
        if decision is Guard.HELD and number not in expected.overtakable:
            assert source in held_sources, f"drop {number} ({source}) should have been held by the guard"
    for run in runs:
        drops = drops_of.get(run.source, [])
        if run.status is RunStatus.HELD:
            assert run.mode == "incremental" and any(expected.guard[n - 1] is not Guard.APPLIED for n in drops), (
                f"run {run.run_id} of {run.source} ({run.mode}) was held: {run.message}"
            )
        else:
            # Every other run ended: succeeded, or failed with its reason (its work is done by the retry's run).
            assert run.status is RunStatus.SUCCEEDED or (run.status is RunStatus.FAILED and run.message), (
                f"run {run.run_id} ended {run.status.value}: {run.message}"
            )
        if run.status is RunStatus.FAILED:
            continue
        counts = run.counts
        if run.mode != "ids":  # a targeted re-sync reads every record and looks at those it was asked about
            assert counts["records"] == counts["valid"] + counts["invalid"], f"run {run.run_id}: {counts}"
            kinds = ("added", "text_changed", "metadata_only", "unchanged")
            assert counts["valid"] == sum(counts[kind] for kind in kinds), f"run {run.run_id}: {counts}"
        if run.status is RunStatus.HELD:
            assert "dispatched_changes" not in counts, f"run {run.run_id} was held, yet dispatched: {counts}"
            continue
        changed = sum(counts[kind] for kind in ("added", "text_changed", "metadata_only", "deleted"))
        # Re-sent products (an earlier change never committed) may also have changed: they are counted in both.
        overtaken = run.mode == "incremental" and any(n in expected.overtakable for n in drops)
        assert overtaken or "undispatched_changes" not in counts, (
            f"run {run.run_id} of {run.source} left changes undispatched, yet no newer drop began before it ended"
        )
        # A run a newer catalog overtook leaves its other changes to that run.
        dispatched = counts.get("dispatched_changes", 0) + counts.get("undispatched_changes", 0)
        assert changed <= dispatched <= changed + counts["resent"], f"run {run.run_id}: {counts}"
        if "undispatched_changes" in counts:
            # Overtaken on a retry of an invocation that had sent a window before it failed: that window's
            # messages were delivered (and counted), though the checkpoint never recorded them.
            assert counts["dispatched_changes"] <= counts["applied_changes"] <= dispatched, (
                f"run {run.run_id}: {counts}"
            )
        elif counts.get("dispatched_changes"):
            assert counts["applied_changes"] == counts["dispatched_changes"], f"run {run.run_id}: {counts}"


def _shown(options: frozenset[Entry | None]) -> str:
    return ", ".join(sorted("nothing" if option is None else str(option) for option in options))


def describe(world: World, scenario: Scenario) -> str:
    """What a failing example was: its config, versions, the model's expectation and the index."""
    lines = [f"config: {scenario.config}", "versions:"]
    for number, records in enumerate(scenario.versions, start=1):
        lines.append(f"  v{number} ({scenario.keys[number - 1] if number <= len(scenario.keys) else 'not dropped'}):")
        lines += [f"    {_short(record)}" for record in records]
    expected = expectation(scenario)
    lines.append(f"guard decisions: {[decision.value for decision in expected.guard]}")
    lines.append(f"overtakable drops: {sorted(expected.overtakable)}")
    lines.append("allowed:")
    for pid, options in sorted(expected.allowed.items()):
        lines.append(f"  {pid[:40]!r}: {sorted(map(str, options))}")
    lines.append("index:")
    for vector_id, vector in sorted(world.pinecone.vectors(CATALOG).items()):
        lines.append(f"  {vector_id[:40]!r}: {vector['metadata']}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) < 200 else text[:200] + "..."
