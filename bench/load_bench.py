"""Load: a burst of changes through a faithful model of the pipeline's queues, concurrency caps, services and
retries, and the functions' memory at 1M products.

    python bench/load_bench.py                                  # 1M changes, 20% injected throttling
    python bench/load_bench.py --changes 100000 --skip-memory   # quicker
    python bench/load_bench.py --no-pace --skip-memory          # what-if: the consumers not paced

1. The burst (load_workload.py): N changes in catalog_gen's mix, made by the real diff and packed by the real
   sender into messages of infra/stack.toml's max_message_bytes, window by window as the dispatcher sends them
   (cached under bench/.data/load/, keyed by the source code that makes them).
2. The drain (load_model.py): a discrete-event model on a virtual clock of the two queues (visibility timeout,
   maxReceiveCount -> DLQ), the event source mappings (batch size, batching window, 6 MB payload, the maximum
   concurrency infra derives), the consumer's requests as ChangeApplier makes them, paced by the product's
   pacer to the shares the stack sets in the consumer's environment, the services' documented rate limits (429
   beyond), injected throttling, the SDKs' own retry policies and the adapters' retries. Run twice in this process:
   a baseline without injected throttling, then with it; the ratio of the drain times is printed.
   Peaks are sliding windows over what the clients sent (every attempt) and what the services accepted.
3. Memory (load_memory.py), each in a subprocess of its own so that peak RSS is its own: the diff function's
   handler on a 1M-product catalog drop with its state in DynamoDB, the state snapshot alone, and one consumer
   invocation on a full batch of full messages; against the functions' configured memory.

Figures are printed; --json prints them as JSON instead. Nothing here asserts: findings are listed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from _common import DATA, dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # infra/

from infra.config import StackConfig, load_stack_config

from catalog_sync.adapters.aws.sqs_queue import SqsChangeSender
from catalog_sync.models.changes import ChangeKind
from load_model import CpuCosts, LoadModel, LoadResult, LoadSettings
from load_workload import (
    CATALOG,
    CHARS_PER_TOKEN,
    RUN_ID,
    Burst,
    MessageWork,
    _RecordingSqs,
    build_burst,
    diff_changes,
    model_id,
)

ROOT = Path(__file__).resolve().parent.parent


def log(message: str, *, quiet: bool) -> None:
    if not quiet:
        print(message, flush=True)


# ---------------------------------------------------------------------------------------------------- the burst


# The code that makes the burst: a change to any of it makes a new one.
BURST_SOURCES = (
    "functions/catalog_sync/logic/diff.py",
    "functions/catalog_sync/logic/snapshot.py",
    "functions/catalog_sync/logic/canonical.py",
    "functions/catalog_sync/logic/validation.py",
    "functions/catalog_sync/formats/records.py",
    "functions/catalog_sync/formats/limits.py",
    "functions/catalog_sync/formats/detection.py",
    "functions/catalog_sync/formats/json_records.py",
    "functions/catalog_sync/formats/csv_records.py",
    "functions/catalog_sync/formats/catalog.py",
    "functions/catalog_sync/logic/packing.py",
    "functions/catalog_sync/resilience/pacing.py",
    "functions/catalog_sync/resilience/pinecone_sdk.py",
    "functions/catalog_sync/resilience/policy.py",
    "functions/catalog_sync/models/changes.py",
    "functions/catalog_sync/models/config.py",
    "functions/catalog_sync/services/dispatch.py",
    "functions/catalog_sync/adapters/aws/sqs_queue.py",
    "functions/catalog_sync/bootstrap/aws.py",
    "functions/catalog_sync/bootstrap/registry.py",
    "functions/catalog_sync/bootstrap/settings.py",
    "functions/catalog_sync/services/diff_runs.py",
    "functions/catalog_sync/adapters/embedders/openai.py",
    "functions/catalog_sync/adapters/pinecone/index.py",
    "functions/catalog_sync/adapters/pinecone/limits.py",
    "bench/load_workload.py",
    "bench/catalog_gen.py",
    "bench/_common.py",
)


def _source_digest() -> str:
    digest = hashlib.sha1()
    for name in BURST_SOURCES:
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()[:12]


def burst(args: argparse.Namespace, config: StackConfig, settings: LoadSettings, *, quiet: bool) -> tuple[Burst, bool]:
    # The consumer's share of the tokens per minute decides how its embedder packs requests.
    tpm = settings.pace_openai_tpm
    key = (
        f"c{args.changes}-s{args.seed}-b{config.queues.max_message_bytes}-d{args.dimension}-t{tpm or 0:.0f}-"
        f"{_source_digest()}"
    )
    path = DATA / "load" / f"burst-{key}.pickle"
    if path.exists():
        cached: Burst = pickle.loads(path.read_bytes())
        return cached, True
    log(f"building the burst ({args.workers} processes; cached in {path.parent}) ...", quiet=quiet)
    made = build_burst(
        args.changes,
        seed=args.seed,
        max_message_bytes=config.queues.max_message_bytes,
        dimension=args.dimension,
        tokens_per_minute=tpm,
        workers=args.workers,
        progress=not quiet,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(made))
    return made, False


def describe_burst(made: Burst) -> dict[str, Any]:
    messages = made.messages
    lanes = {lane: [m for m in messages if m.lane == lane] for lane in ("p", "n")}
    tokens = sum(t for m in messages for _, t in m.embed_requests)
    return {
        "changes": made.changes,
        "kinds": made.kinds,
        "messages": len(messages),
        "messages_per_lane": {lane: len(ms) for lane, ms in lanes.items()},
        "mean_changes_per_message": made.changes / max(len(messages), 1),
        "mean_message_bytes": sum(m.body_bytes for m in messages) / max(len(messages), 1),
        "max_message_bytes": max((m.body_bytes for m in messages), default=0),
        "sqs_send_requests": made.sqs_requests,
        "openai_requests": sum(len(m.embed_requests) for m in messages),
        "openai_tokens": tokens,
        "pinecone_upserts": sum(len(m.upsert_requests) for m in messages),
        "pinecone_updates": sum(m.updates for m in messages),
        "pinecone_deletes": sum(len(m.delete_requests) for m in messages),
        "spool_bytes": made.spool_bytes,
        "archive_bytes_estimate": sum(m.body_bytes for m in messages) * 3 // 4,
        "built_seconds": made.seconds,
    }


# ---------------------------------------------------------------------------------------------------- the drain


def simulate(
    messages: list[MessageWork], settings: LoadSettings, *, throttle: float, seed: int, label: str, quiet: bool
) -> tuple[LoadResult, float]:
    started = time.perf_counter()

    def progress(now: float, model: LoadModel) -> None:
        left = {lane: q.remaining for lane, q in model.queues.items()}
        log(
            f"  [{label}] t={now / 60:6.1f} min  messages left: priority {left['p']}, normal {left['n']}  "
            f"({time.perf_counter() - started:.0f} s)",
            quiet=quiet,
        )

    result = LoadModel(messages, settings, throttle=throttle, seed=seed).run(progress, every=1800.0)
    return result, time.perf_counter() - started


def result_dict(result: LoadResult, wall: float) -> dict[str, Any]:
    stats = result.stats
    return {
        "throttle": result.throttle,
        "drain_s": result.drain_s,
        "lane_drain_s": {"priority": result.lane_drain_s["p"], "normal": result.lane_drain_s["n"]},
        "messages": result.messages,
        "deleted": result.deleted,
        "dead_lettered": result.dead_lettered,
        "dead_lettered_changes": result.dead_lettered_changes,
        "max_receives": result.max_receives,
        "invocations": stats.invocations,
        "mean_batch": sum(stats.batch_sizes) / max(len(stats.batch_sizes), 1),
        "timeouts": stats.timeouts,
        "cold_starts": stats.cold_starts,
        "receives": stats.receives,
        "longest_invocation_s": stats.max_invocation_s,
        "paced_wait_s": stats.paced_s,
        "injected_429": stats.injected,
        "rate_limited_429": stats.rate_limited,
        "retries": stats.retries,
        "requests_given_up": stats.gave_up,
        "message_failures": stats.message_failures,
        "dynamodb_requests": stats.dynamodb_requests,
        "peaks": {name: {"sent": s, "accepted": a, "limit": lim} for name, (s, a, lim) in result.peaks.items()},
        "client_excess": result.client_excess(),
        "service_excess": result.service_excess(),
        "events": result.events,
        "wall_seconds": wall,
    }


def lower_bounds(made: Burst, settings: LoadSettings) -> dict[str, float]:
    """The least drain time the limits allow, whatever the concurrency; and with the consumers paced, the least
    their shares allow: a lane's consumers have only their shares, half of each limit with two lanes."""
    tokens = sum(t for m in made.messages for _, t in m.embed_requests)
    requests = sum(len(m.embed_requests) for m in made.messages)
    updates = sum(m.updates for m in made.messages)
    upserts = sum(len(m.upsert_requests) for m in made.messages)
    bounds = {
        "openai_tokens_s": tokens / settings.openai_tpm * 60,
        "openai_requests_s": requests / settings.openai_rpm * 60,
        "pinecone_updates_s": updates / settings.pinecone_rps,
        "pinecone_upserts_s": upserts / settings.pinecone_rps,
    }
    if settings.pace_openai_tpm and settings.pace_pinecone_writes:
        lane_shares = settings.concurrency_per_queue
        paced = []
        for lane in ("p", "n"):
            work = [m for m in made.messages if m.lane == lane]
            lane_tokens = sum(sum(m.embed_paced_tokens) or sum(t for _, t in m.embed_requests) for m in work)
            lane_writes = sum(m.updates + len(m.upsert_requests) + len(m.delete_requests) for m in work)
            paced.append(
                max(
                    lane_tokens / (settings.pace_openai_tpm * lane_shares) * 60,
                    lane_writes / (settings.pace_pinecone_writes * lane_shares),
                )
            )
        bounds["paced_s"] = max(paced)
    return bounds


# ---------------------------------------------------------------------------------------------------- memory


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], check=False, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"measurement {args[:2]} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def full_messages(kind: ChangeKind, count: int, config: StackConfig, *, dimension: int, seed: int) -> list[str]:
    """`count` messages of changes of one kind, each packed as full as max_message_bytes allows."""
    per_message = 5_000 if kind is ChangeKind.DELETED else 3_200  # more than one full message holds
    changes = diff_changes(kind, 0, per_message * (count + 1), seed=seed, model=model_id(dimension))
    sqs = _RecordingSqs()
    sender = SqsChangeSender(
        sqs,
        queue_url="n",
        priority_queue_url="p",
        run_id=RUN_ID,
        max_message_bytes=config.queues.max_message_bytes,
        catalog=CATALOG,
    )
    sender.send([changes], priority=kind in (ChangeKind.METADATA_ONLY, ChangeKind.DELETED))
    bodies = [str(entry["MessageBody"]) for entry in sqs.entries]
    if kind is not ChangeKind.DELETED:
        bodies = bodies[:count]
    if len(bodies) < count:
        raise RuntimeError(f"only {len(bodies)} full messages, {count} wanted")
    return bodies[:count]


def run_consumer(batches: list[list[str]], config: StackConfig) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        file.write(orjson.dumps(batches))
        file.flush()
        return _child(
            [
                "--measure",
                "consumer",
                file.name,
                str(config.functions.consumer.memory_mb),
                str(config.functions.consumer.timeout_seconds),
                str(config.queues.max_message_bytes),
            ]
        )


def calibrate(args: argparse.Namespace, config: StackConfig) -> tuple[CpuCosts, dict[str, Any]]:
    """The consumer handler's own CPU per change, by kind: one warm invocation per kind on a full message."""
    kinds = (ChangeKind.TEXT_CHANGED, ChangeKind.METADATA_ONLY, ChangeKind.DELETED)
    warm_up = full_messages(ChangeKind.TEXT_CHANGED, 1, config, dimension=args.dimension, seed=args.seed + 1)
    batches = [warm_up] + [full_messages(kind, 1, config, dimension=args.dimension, seed=args.seed) for kind in kinds]
    measured = run_consumer(batches, config)
    per_change = [i["handler_cpu_s"] / i["changes"] for i in measured["invocations"][1:]]
    if any(i["failures"] for i in measured["invocations"]):
        raise RuntimeError(f"the consumer failed messages while calibrating: {measured['invocations']}")
    return CpuCosts(upsert=per_change[0], update=per_change[1], delete=per_change[2]), measured


def measure_memory(args: argparse.Namespace, config: StackConfig, *, quiet: bool) -> dict[str, Any]:
    from load_memory import prepare_state

    n = args.products
    diff_mb = config.functions.diff.memory_mb
    consumer_mb = config.functions.consumer.memory_mb
    v1, v2, expected = dataset(n)
    database = v1.parent / f"dynamodb-{model_id(args.dimension).replace('/', '_')}.sqlite"
    if not database.exists():
        log(f"  writing the DynamoDB state of v1 ({n:,} products) to {database} ...", quiet=quiet)
        changed = {pid for kind in ("metadata_only", "text_changed", "deleted") for pid in expected[kind]}
        prepare_state(v1, changed, database.with_suffix(".tmp"), model=model_id(args.dimension))
        database.with_suffix(".tmp").rename(database)
    figures: dict[str, Any] = {"products": n}
    log(f"  snapshot: DynamoStateStore.snapshot() over {n:,} items ...", quiet=quiet)
    figures["snapshot"] = _child(["--measure", "snapshot", str(database)])
    figures["snapshot"]["limit_mb"] = diff_mb
    log(f"  diff: the diff handler on a {n:,}-product drop ...", quiet=quiet)
    figures["diff"] = _child(
        [
            "--measure",
            "diff",
            str(database),
            str(v2),
            str(n),
            str(diff_mb),
            str(config.functions.diff.timeout_seconds),
            str(config.queues.max_message_bytes),
        ]
    )
    figures["diff"]["limit_mb"] = diff_mb
    figures["diff"]["expected_changes"] = sum(len(ids) for ids in expected.values())
    batch = config.consumer_batch_size
    log(f"  consumer: one invocation on {batch} full messages of text changes ...", quiet=quiet)
    bodies = full_messages(ChangeKind.TEXT_CHANGED, batch, config, dimension=args.dimension, seed=args.seed)
    figures["consumer"] = run_consumer([bodies], config)
    figures["consumer"]["limit_mb"] = consumer_mb
    return figures


def run_measurement(argv: list[str]) -> None:
    from load_memory import measure_consumer, measure_diff, measure_snapshot, setup_child

    kind, *rest = argv
    if kind == "snapshot":
        setup_child(1024 * 1024)
        result = measure_snapshot(Path(rest[0]))
    elif kind == "diff":
        database, v2, products, memory, timeout, max_bytes = rest
        setup_child(int(max_bytes))
        result = measure_diff(Path(database), Path(v2), int(products), int(memory), int(timeout))
    else:
        path, memory, timeout, max_bytes = rest
        setup_child(int(max_bytes))
        batches = orjson.loads(Path(path).read_bytes())
        result = measure_consumer(batches, int(memory), int(timeout))
    print(json.dumps(result, default=str))


# ---------------------------------------------------------------------------------------------------- report


def minutes(seconds: float) -> str:
    return f"{seconds / 60:,.1f} min"


def print_report(report: dict[str, Any]) -> None:
    b, s = report["burst"], report["settings"]
    kinds = ", ".join(f"{k} {v:,}" for k, v in b["kinds"].items())
    print(f"\nburst: {b['changes']:,} changes ({kinds})")
    print(
        f"  packed by the real sender into {b['messages']:,} messages (priority {b['messages_per_lane']['p']:,}, "
        f"normal {b['messages_per_lane']['n']:,}), {b['mean_changes_per_message']:,.0f} changes and "
        f"{b['mean_message_bytes'] / 1e6:.2f} MB a message on average (largest {b['max_message_bytes']:,} bytes), "
        f"{b['sqs_send_requests']:,} SendMessageBatch calls"
    )
    print(
        f"  consumer requests without retries: OpenAI {b['openai_requests']:,} ({b['openai_tokens'] / 1e6:,.1f}M "
        f"tokens at {CHARS_PER_TOKEN} characters a token), Pinecone upserts {b['pinecone_upserts']:,}, "
        f"updates {b['pinecone_updates']:,}, deletes {b['pinecone_deletes']:,}"
    )
    print(
        f"configuration (infra/stack.toml through infra/config.py): {s['concurrency_per_queue']} consumers per queue "
        f"(RateLimits.per_queue_concurrency), batch {s['batch_size']} / window {s['batching_window_s']:.0f} s / 6 MB "
        f"payload, visibility timeout {s['visibility_timeout_s']:.0f} s, maxReceiveCount {s['max_receive_count']}, "
        f"consumer {s['consumer_memory_mb']} MB / {s['consumer_timeout_s']:.0f} s, Pinecone update pool "
        f"{s['update_concurrency']}, state pool {s['state_concurrency']}, DynamoDB attempts "
        f"{s['dynamodb_max_attempts']}, Pinecone adapter attempts {s['pinecone_retry']['attempts']}"
    )
    if s["pace_openai_tpm"] is not None:
        print(
            f"pacing, each consumer (its environment, from StackConfig.consumer_environment): OpenAI "
            f"{s['pace_openai_rpm']:,.0f} requests and {s['pace_openai_tpm']:,.0f} tokens a minute, Pinecone "
            f"{s['pace_pinecone_writes']:,.1f} writes and {s['pace_pinecone_upsert_bytes'] / 1e6:,.1f} MB a second"
        )
    else:
        print("pacing: none")
    if report["what_if"]:
        print(f"WHAT-IF, not the deployed configuration: {' '.join(report['what_if'])}")
    bounds = report["lower_bounds"]
    print(
        f"least drain time the limits allow: OpenAI tokens {minutes(bounds['openai_tokens_s'])}, Pinecone updates "
        f"{minutes(bounds['pinecone_updates_s'])}"
        + (f"; the paced consumers' shares allow: {minutes(bounds['paced_s'])}" if "paced_s" in bounds else "")
    )
    runs = report["runs"]
    names = list(runs)
    print(f"\n{'':44}" + "".join(f"{name:>28}" for name in names))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:44}" + "".join(f"{v:>28}" for v in values))

    row("drain time (virtual)", [minutes(runs[n]["drain_s"]) for n in names])
    row("  priority lane", [minutes(runs[n]["lane_drain_s"]["priority"]) for n in names])
    row("  normal lane", [minutes(runs[n]["lane_drain_s"]["normal"]) for n in names])
    row("messages deleted / dead-lettered", [f"{runs[n]['deleted']} / {runs[n]['dead_lettered']}" for n in names])
    row("changes dead-lettered", [f"{runs[n]['dead_lettered_changes']:,}" for n in names])
    row("invocations (mean batch)", [f"{runs[n]['invocations']:,} ({runs[n]['mean_batch']:.1f})" for n in names])
    row("function timeouts / cold starts", [f"{runs[n]['timeouts']:,} / {runs[n]['cold_starts']:,}" for n in names])
    row("longest invocation", [f"{runs[n]['longest_invocation_s']:.0f} s" for n in names])
    row("time spent waiting for the pacers", [minutes(runs[n]["paced_wait_s"]) for n in names])
    for key, label in (
        ("injected_429", "429 injected"),
        ("rate_limited_429", "429 rate-limited by the service"),
        ("retries", "retries (SDKs and adapters)"),
        ("requests_given_up", "requests the SDKs gave up on"),
        ("message_failures", "failed receives of a message, by cause"),
    ):
        keys = sorted({k for n in names for k in runs[n][key]})
        row(label, [f"{sum(runs[n][key].values()):,}" for n in names])
        for k in keys:
            row(f"  {k}", [f"{runs[n][key].get(k, 0):,}" for n in names])
    print("\npeaks over sliding windows, sent by the clients / accepted by the service, against the limit:")
    for peak_name, first in runs[names[0]]["peaks"].items():
        values = [
            f"{runs[n]['peaks'][peak_name]['sent']:,.0f} / {runs[n]['peaks'][peak_name]['accepted']:,.0f}"
            for n in names
        ]
        row(f"  {peak_name} (limit {first['limit']:,.0f})", values)
    row("simulated events (wall time)", [f"{runs[n]['events']:,} ({runs[n]['wall_seconds']:.0f} s)" for n in names])
    if "ratio" in report:
        print(f"\ndrain time, throttled / baseline: {report['ratio']:.2f}")
    memory = report.get("memory")
    if memory:
        print(f"\npeak RSS at {memory['products']:,} products (each measured in a process of its own):")
        consumer = memory["consumer"]
        invocation = consumer["invocations"][0]
        for key, label in (
            ("diff", "diff function (the handler: snapshot, diff, guard count, dispatch)"),
            ("snapshot", "  of which the DynamoDB state snapshot alone"),
            ("consumer", f"consumer function, one invocation of {invocation['messages']} full messages"),
        ):
            m = memory[key]
            print(
                f"  {label:68} {m['peak_mb']:7,.0f} MB (after imports {m['baseline_mb']:4,.0f} MB) / "
                f"{m['limit_mb']:,} MB = {m['peak_mb'] / m['limit_mb']:.2f}"
            )
        d = memory["diff"]
        found = sum(d["counts"].get(k, 0) for k in ("added", "text_changed", "metadata_only", "deleted"))
        print(
            f"  diff: {d['status']}, {found:,} changes (expected {d['expected_changes']:,}), {d['messages']:,} "
            f"messages, {d['seconds']:.0f} s here; consumer: {invocation['changes']:,} changes in "
            f"{invocation['payload_mb']:.1f} MB, {invocation['failures']} failed, {invocation['seconds']:.0f} s here"
        )
    print("\nfindings:")
    for finding in report["findings"] or ["none"]:
        print(f"  - {finding}")


def findings(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    b = report["burst"]
    for name, run in report["runs"].items():
        for excess in run["client_excess"]:
            out.append(f"{name}: the consumers exceed a documented limit: {excess}")
        if run["service_excess"]:
            out.append(f"{name}: MODEL ERROR, a service accepted more than its limit: {run['service_excess']}")
        if run["dead_lettered"]:
            out.append(
                f"{name}: {run['dead_lettered']} of {run['messages']} messages ({run['dead_lettered_changes']:,} "
                f"changes) reached the DLQ; failures by cause: {run['message_failures']}"
            )
        if run["timeouts"]:
            out.append(f"{name}: {run['timeouts']} consumer invocations hit the function timeout")
    spool_mb = (b["spool_bytes"] + b["archive_bytes_estimate"]) / 1e6
    ephemeral_mb = report["settings"]["diff_ephemeral_mb"]
    if spool_mb > ephemeral_mb:
        out.append(
            f"the diff spools the burst's changes to /tmp ({b['spool_bytes'] / 1e6:,.0f} MB of JSON Lines) and "
            f"archives them there before the upload (~{b['archive_bytes_estimate'] / 1e6:,.0f} MB gzip): "
            f"{spool_mb:,.0f} MB against its {ephemeral_mb} MB of ephemeral storage"
        )
    for key, m in (report.get("memory") or {}).items():
        if isinstance(m, dict) and m.get("peak_mb", 0) > m.get("limit_mb", math.inf):
            out.append(f"memory: {key} peaks at {m['peak_mb']:,.0f} MB, over its configured {m['limit_mb']:,} MB")
    return out


def what_if_config(config: StackConfig, args: argparse.Namespace) -> StackConfig:
    """The stack configuration with the what-if overrides, validated again (the visibility timeout follows)."""
    data = config.model_dump()
    if args.concurrency is not None:
        data["limits"]["max_concurrency"] = args.concurrency
    if args.batch_size is not None:
        data["queues"]["batch_size"] = args.batch_size
    if args.consumer_timeout is not None:
        data["functions"]["consumer"]["timeout_seconds"] = args.consumer_timeout
    if args.max_message_bytes is not None:
        data["queues"]["max_message_bytes"] = args.max_message_bytes
    return StackConfig.model_validate(data)


def what_if_settings(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.no_pace:
        values.update(
            pace_openai_rpm=None, pace_openai_tpm=None, pace_pinecone_writes=None, pace_pinecone_upsert_bytes=None
        )
    if args.update_concurrency is not None:
        values["update_concurrency"] = args.update_concurrency
    if args.dynamodb_attempts is not None:
        values["dynamodb_max_attempts"] = args.dynamodb_attempts
    return values


def what_ifs(args: argparse.Namespace) -> list[str]:
    names = (
        "concurrency",
        "batch_size",
        "consumer_timeout",
        "max_message_bytes",
        "update_concurrency",
        "dynamodb_attempts",
    )
    chosen = [f"--{n.replace('_', '-')} {getattr(args, n)}" for n in names if getattr(args, n) is not None]
    chosen += ["--no-pace"] if args.no_pace else []
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--throttle", type=float, default=0.2, help="share of requests answered 429 (injected)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (progress goes to stderr)")
    parser.add_argument("--config", type=Path, default=ROOT / "infra" / "stack.toml")
    parser.add_argument("--dimension", type=int, default=1536, help="embedding dimension (text-embedding-3-small)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes building the burst")
    parser.add_argument("--products", type=int, default=1_000_000, help="catalog size for the memory figures")
    parser.add_argument("--skip-memory", action="store_true")
    what_if = parser.add_argument_group("what-if: override the deployed configuration")
    what_if.add_argument("--concurrency", type=int, help="[limits] max_concurrency: consumers per queue")
    what_if.add_argument("--batch-size", type=int, help="[queues] batch_size")
    what_if.add_argument("--consumer-timeout", type=int, help="[functions] consumer timeout (visibility follows)")
    what_if.add_argument("--max-message-bytes", type=int, help="[queues] max_message_bytes (a burst of its own)")
    code = parser.add_argument_group("what-if: product changes the model can try")
    code.add_argument("--update-concurrency", type=int, help="PineconeVectorIndex.update_concurrency (8)")
    code.add_argument("--no-pace", action="store_true", help="the consumers do not pace their requests")
    code.add_argument("--dynamodb-attempts", type=int, help="botocore max_attempts for DynamoDB (the Pipeline's: 10)")
    parser.add_argument("--measure", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        run_measurement(args.measure)
        return
    quiet = args.json
    if quiet:
        sys.stdout = sys.stderr  # progress and prints to stderr; the JSON goes to the real stdout below
    config = what_if_config(load_stack_config(args.config), args)
    log("calibrating: the consumer handler's CPU per change, on one full message of each kind ...", quiet=quiet)
    cpu, calibration = calibrate(args, config)
    log(
        f"  {cpu.upsert * 1e3:.2f} ms per upsert, {cpu.update * 1e3:.2f} ms per metadata update, "
        f"{cpu.delete * 1e3:.3f} ms per delete (this machine)",
        quiet=quiet,
    )
    settings = LoadSettings.from_stack(config, cpu=cpu, **what_if_settings(args))
    made, cached = burst(args, config, settings, quiet=quiet)
    log(
        f"burst: {made.changes:,} changes in {len(made.messages):,} messages "
        f"({'cached' if cached else f'built in {made.seconds:.0f} s'})",
        quiet=quiet,
    )
    report: dict[str, Any] = {
        "what_if": what_ifs(args),
        "burst": describe_burst(made),
        "settings": {**asdict(settings), "diff_ephemeral_mb": config.functions.diff.ephemeral_storage_mb},
        "calibration": calibration["invocations"][1:],
        "lower_bounds": lower_bounds(made, settings),
        "runs": {},
    }
    baseline, wall = simulate(made.messages, settings, throttle=0.0, seed=args.seed, label="baseline", quiet=quiet)
    report["runs"]["baseline (0% throttling)"] = result_dict(baseline, wall)
    if args.throttle:
        throttled, wall = simulate(
            made.messages, settings, throttle=args.throttle, seed=args.seed, label="throttled", quiet=quiet
        )
        report["runs"][f"throttled ({args.throttle:.0%})"] = result_dict(throttled, wall)
        report["ratio"] = throttled.drain_s / baseline.drain_s if baseline.drain_s else math.inf
    if not args.skip_memory:
        log("memory:", quiet=quiet)
        report["memory"] = measure_memory(args, config, quiet=quiet)
    report["findings"] = findings(report)
    if args.json:
        sys.stdout = sys.__stdout__
        print(json.dumps(report, indent=2, default=str))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
