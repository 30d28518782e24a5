"""A drop the deletion guard holds changes nothing, through the real handlers under moto: a repair afterwards re-reads
the last drop the guard let through, and an older drop's late event is still synced (README: "A held drop changes
nothing"). Found by the convergence suite with the guard on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import product
from tests.doubles.lambda_context import Context
from tests.e2e.test_aws_pipeline import World, drop, index_matches, run_pipeline, sqs_event


def held(result: dict[str, Any]) -> bool:
    [run] = result["diff"]["runs"]
    return bool(run["status"] == "held")


def test_a_repair_after_a_held_drop_re_reads_the_last_drop_the_guard_let_through(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    from handlers import _shared

    v1 = [product(str(i)) for i in range(10)]
    assert not held(run_pipeline(world, drop(world, "v1.jsonl", v1)))
    # A truncated export: 7 of 10 products gone, and the rest repriced. Held (the default guard is 20%).
    truncated = [product(str(i), price=99.0) for i in range(3)]
    assert held(run_pipeline(world, drop(world, "v2.jsonl", truncated)))
    index_matches(world, v1)
    repairs: list[dict[str, Any]] = []
    monkeypatch.setattr(_shared.pipeline().settings, "diff_function", "arn:aws:lambda:us-east-1:1:function:diff")
    monkeypatch.setattr(_shared.pipeline(), "invoke_self", lambda arn, payload: repairs.append(payload))
    assert _shared.pipeline().runs.request_repair("shop", ["0", "1"])
    for repair in repairs:
        assert not held(run_pipeline(world, repair))
    index_matches(world, v1)  # not the held drop's prices


def test_an_older_drop_arriving_after_a_held_one_is_synced(world: World, monkeypatch: pytest.MonkeyPatch):
    from moto.s3 import models as moto_s3

    from handlers import consumer, diff

    v1 = [product(str(i)) for i in range(10)]
    v2 = [product(str(i), price=2.0) for i in range(10)]
    now = moto_s3.utcnow
    monkeypatch.setattr(moto_s3, "utcnow", lambda: now() - timedelta(minutes=2))
    assert not held(run_pipeline(world, drop(world, "v1.jsonl", v1)))
    monkeypatch.setattr(moto_s3, "utcnow", lambda: now() - timedelta(minutes=1))
    older = drop(world, "v2.jsonl", v2)
    monkeypatch.setattr(moto_s3, "utcnow", now)
    assert held(run_pipeline(world, drop(world, "v3.jsonl", v1[:2])))  # newer, but held
    result = diff.handler(older, Context())  # v2's event comes late
    assert result["runs"][0]["status"] == "dispatched", result
    batch, _ = sqs_event(world)
    assert consumer.handler(batch, Context())["batchItemFailures"] == []
    index_matches(world, v2)
