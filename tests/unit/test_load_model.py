"""The load model (bench/load_model.py) on small bursts: its invariants hold, and its checks can fail.

The benchmark (bench/load_bench.py) reports figures; these tests only make sure the model counts what it claims
to: every message ends deleted or dead-lettered, a message is dead-lettered after maxReceiveCount receives, the
services never accept more than their limits, and a client-side excess of a limit is reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
from infra.config import load_stack_config

from catalog_sync.resilience.policy import PINECONE_WRITE_RETRY
from load_model import Engine, LoadModel, LoadResult, LoadSettings, Retries, peak
from load_workload import MessageWork, build_burst

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def settings() -> LoadSettings:
    return LoadSettings.from_stack(load_stack_config(ROOT / "infra" / "stack.toml"))


@pytest.fixture(scope="module")
def burst_messages(settings: LoadSettings) -> list[MessageWork]:
    config = load_stack_config(ROOT / "infra" / "stack.toml")
    burst = build_burst(
        6_000,
        seed=3,
        max_message_bytes=config.queues.max_message_bytes,
        dimension=64,
        tokens_per_minute=settings.pace_openai_tpm,
    )
    assert burst.changes == 6_000
    return burst.messages


def work(lane: str = "p", *, updates: int = 0, deletes: int = 0, upserts: int = 0) -> MessageWork:
    return MessageWork(
        lane=lane,
        body_bytes=100_000,
        changes=updates + deletes + upserts,
        ids=updates + deletes + upserts,
        cache_keys=upserts,
        embed_requests=((upserts, upserts * 100),) if upserts else (),
        # Requests of up to 1,000 vectors of 1.5 KB (within Pinecone's 2 MB).
        upsert_requests=tuple(min(1_000, upserts - start) * 1_500 for start in range(0, upserts, 1_000)),
        updates=updates,
        delete_requests=(deletes,) if deletes else (),
        upserts=upserts,
        deletes=deletes,
    )


def run(messages: list[MessageWork], settings: LoadSettings, *, throttle: float = 0.0, seed: int = 1) -> LoadResult:
    return LoadModel(messages, settings, throttle=throttle, seed=seed).run()


def settled(result: LoadResult) -> None:
    assert result.deleted + result.dead_lettered == result.messages
    assert result.max_receives <= result.settings.max_receive_count
    assert result.service_excess() == []


def test_the_deployed_configuration_drives_the_model(settings: LoadSettings) -> None:
    config = load_stack_config(ROOT / "infra" / "stack.toml")
    assert settings.concurrency_per_queue == config.limits.per_queue_concurrency()
    assert settings.batch_size == config.consumer_batch_size
    assert settings.visibility_timeout_s == config.visibility_timeout_seconds
    assert settings.max_receive_count == config.queues.max_receive_count
    # The pacing the consumer reads from the environment the stack gives it: a quarter of each limit.
    assert settings.pace_openai_tpm == config.limits.openai_tokens_per_minute / 4
    assert settings.pace_pinecone_writes == config.limits.pinecone_write_requests_per_second / 4
    assert settings.paced and not settings.unpaced().paced
    assert settings.pinecone_retry == PINECONE_WRITE_RETRY  # PipelineSettings' attempts are the adapter's own default


def test_a_real_burst_is_drained_and_every_message_settled(
    burst_messages: list[MessageWork], settings: LoadSettings
) -> None:
    relaxed = dataclasses.replace(settings, update_concurrency=1)
    result = run(burst_messages, relaxed)
    settled(result)
    assert result.changes == 6_000
    assert result.dead_lettered == 0
    assert result.drain_s > 0


def test_a_message_that_always_fails_is_dead_lettered_after_max_receive_count(settings: LoadSettings) -> None:
    result = run([work(updates=10), work("n", deletes=5)], settings, throttle=1.0)
    settled(result)
    assert result.dead_lettered == 2
    assert result.dead_lettered_changes == 15
    assert result.max_receives == settings.max_receive_count
    assert result.stats.receives == 2 * settings.max_receive_count
    # Each failed receive waits out the visibility timeout before the next one.
    assert result.drain_s >= settings.max_receive_count * settings.visibility_timeout_s


def test_throttling_is_counted_apart_from_rate_limits(
    burst_messages: list[MessageWork], settings: LoadSettings
) -> None:
    result = run(burst_messages, dataclasses.replace(settings, update_concurrency=1), throttle=0.3)
    settled(result)
    assert sum(result.stats.injected.values()) > 0
    assert result.stats.retries.get("openai", 0) + result.stats.retries.get("dynamodb", 0) > 0


def test_an_excess_over_a_limit_is_reported(settings: LoadSettings) -> None:
    # Unpaced, eight update threads in each of two consumers send far more than 100 updates a second.
    settings = settings.unpaced()
    messages = [work(updates=3_000), work(updates=3_000)]
    enforced = run(messages, dataclasses.replace(settings, batch_size=1))
    assert any(line.startswith("pinecone updates/s") for line in enforced.client_excess())
    assert enforced.service_excess() == []  # the service answered 429 instead
    assert enforced.stats.rate_limited.get("pinecone update", 0) > 0
    # Without the service enforcing its limit, the check on what it accepted fails too: the bound is checked.
    unenforced = run(messages, dataclasses.replace(settings, batch_size=1, enforce_limits=False))
    assert any(line.startswith("pinecone updates/s") for line in unenforced.service_excess())


def test_paced_clients_stay_within_the_limits(settings: LoadSettings) -> None:
    messages = [work(updates=3_000), work(updates=3_000), work("n", upserts=2_000), work("n", upserts=2_000)]
    result = run(messages, dataclasses.replace(settings, batch_size=1))
    settled(result)
    assert result.client_excess() == []
    assert result.stats.rate_limited == {}
    assert result.stats.paced_s > 0
    # Under throttling too: retries wait for room like any request.
    throttled = run(messages, dataclasses.replace(settings, batch_size=1), throttle=0.2)
    settled(throttled)
    assert throttled.dead_lettered == 0 and throttled.client_excess() == []
    assert throttled.stats.retries.get("pinecone", 0) + throttled.stats.retries.get("pinecone adapter", 0) > 0


def test_an_invocation_past_the_timeout_returns_its_whole_batch(settings: LoadSettings) -> None:
    slow = dataclasses.replace(settings, consumer_timeout_s=0.5, max_receive_count=2)
    result = run([work(updates=500), work(updates=1)], slow)
    settled(result)
    assert result.stats.timeouts >= 1
    assert result.stats.message_failures.get("function timeout", 0) >= 2


def test_peaks_are_over_half_open_sliding_windows() -> None:
    events = [(0.0, 1.0), (0.5, 2.0), (1.0, 4.0), (1.6, 8.0)]
    assert peak(events, 1.0) == 2  # (0, 1] holds 0.5 and 1.0, not 0.0
    assert peak(events, 1.0, amounts=True) == 12.0
    assert peak([], 1.0) == 0


def test_retry_delays_come_from_the_sdks(settings: LoadSettings) -> None:
    retries = Retries(settings)
    assert retries.openai_retries_429 and retries.pinecone_retries_429
    assert 0.375 <= retries.openai_delay(0) <= 0.5  # 0.5 s, less up to 25% jitter
    assert 6.0 <= retries.openai_delay(5) <= 8.0  # capped at 8 s
    assert 0.25 <= retries.pinecone_delay(0, None) <= 0.75  # decorrelated jitter from 0.25 s
    assert 0.0 <= retries.dynamodb_delay(1) <= 1.0  # throttling: rand x 1 s
    assert retries.dynamodb_max_attempts == 4


def test_the_engine_runs_processes_on_a_virtual_clock() -> None:
    engine = Engine()
    seen: list[tuple[str, float]] = []

    def child(name: str, delay: float) -> Generator[Any, Any, str]:
        yield delay
        seen.append((name, engine.now))
        return name

    def parent() -> Generator[Any, Any, None]:
        results = yield [child("a", 2.0), child("b", 1.0)]
        seen.append(("joined", engine.now))
        assert [value for value, _ in results] == ["a", "b"]

    engine.spawn(parent())
    engine.run()
    assert seen == [("b", 1.0), ("a", 2.0), ("joined", 2.0)]
