"""The convergence property: whatever goes wrong, once the queues drain the index is what the catalog says.

Random sequences of catalog versions go through the real handlers (diff, consumer) under moto, with the real
`pinecone` and `openai` SDKs against local doubles, while faults are injected along the way:

- DynamoDB and SQS throttling (answered before moto, for botocore's retries to absorb);
- OpenAI 429/500 and Pinecone 429/5xx responses, in bursts that sometimes outlast the SDKs' retries;
- a consumer that crashes before its index write, or after it and before the commit;
- deliveries in random batches and order, and duplicates (the same message delivered again later);
- a diff that runs out of time part way and continues in another invocation, later, in any order;
- overlapping work: at an index write or a diff's desired-state write, another invocation runs first (a newer
  drop's diff, a consumer batch, a pending continuation or repair);
- drops out of order (an older drop's diff running after a newer one's), and drops within one second.

Each example draws its catalog config too: the text joined or from a template, a required field, and for some
the deletion guard on. Messages are received from the real (moto) queues with a visibility timeout of 0 and a
redrive policy, so a message that keeps failing lands in its dead-letter queue; after the drain the DLQs are
redriven with the project's own redrive function.

The oracle is `tests/harness/reference_model.py`, written from the README's rules, sharing no code with the product:
per product, the outcomes the rules allow after the last version (its text, compared with the text the OpenAI
double embedded for the stored vector, the vector with the double's own function, its metadata). What depends on
timing (the guard's share while deletions are on their way, a drop a newer one overtook) is decided by the model
from the catalog versions and from this harness's own schedule, never from the product's state or its counts.
Faults count where they were delivered (tests/doubles/faults.py).

Here, one example's scenario and its run; what is drawn (convergence_draws), the world it runs in
(convergence_world) and the checks after it (convergence_checks) are beside it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
from botocore.exceptions import ClientError
from hypothesis import note
from hypothesis import strategies as st

from tests.doubles.aws_resources import BUCKET, EVENTS, TABLE, create_table
from tests.doubles.faults import LambdaCrash
from tests.doubles.lambda_context import Context, ShortContext
from tests.harness.convergence_checks import check_converged, describe
from tests.harness.convergence_draws import (
    CATALOG,
    CONFIGS,
    DIMENSIONS,
    SAME_SECOND_DROPS,
    draw_config,
)
from tests.harness.convergence_world import World
from tests.harness.reference_model import ModelConfig

# ---------------------------------------------------------------- one example


class _Clock(ShortContext):
    """A Lambda context whose clock runs out after a few looks; `ran_out` once the function saw it run out."""

    ran_out: bool = False

    def get_remaining_time_in_millis(self) -> int:
        remaining = super().get_remaining_time_in_millis()
        if remaining < 60_000:
            self.ran_out = True
        return remaining


NOT_A_DROP = 0  # the lineage of work no drop started (a consumer's repair)


class Scenario:
    """One example: drops the versions, runs invocations and deliveries in an order the draws decide, injects
    faults, drains, redrives; then `check_converged`.

    Every diff invocation belongs to a lineage: the drop whose event started it (its retries and continuations
    too), or none (a repair a consumer asked for). A drop is `overtakable` when a newer drop's work began while some
    of its own was still to run: its event not yet handled, an invocation of it pending, failed or running. That is
    this harness's schedule, not the product's state, and it is all the model is told about timing.
    """

    def __init__(self, world: World, data: st.DataObject, versions: list[list[dict[str, Any]]]) -> None:
        self.world = world
        self.data = data
        self.versions = versions
        self.config: ModelConfig = CONFIGS["joined"]
        self.dropped = 0
        self.keys: list[str] = []  # the object key of each drop
        self.sequencer = 0
        # Asynchronous invocations of the diff function, pending, with their lineage.
        self.invocations: list[tuple[int, dict[str, Any]]] = []
        self.drops: list[tuple[int, dict[str, Any]]] = []  # drop events, in the order S3 sent them
        self.ghosts: list[dict[str, Any]] = []  # deliveries SQS will make again (at-least-once)
        self.diff_failures: list[tuple[int, dict[str, Any]]] = []  # diff invocations that failed three times
        self.running: list[int] = []  # the lineages of the invocations running, innermost last
        self.begun = 0  # the newest drop whose work began
        self.overtakable: set[int] = set()
        self.faults: Counter[str] = Counter()
        self.trail: list[str] = []  # what was drawn, in order (shown when an example fails)
        self.calm = False
        self.depth = 0
        self.crash: str | None = None
        self.race = False
        self._delivered_before: dict[str, Counter[int] | int] = {}

    # ------------------------------------------------------------ helpers

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        value = self.data.draw(strategy, label=label)
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    draw {label}: {value!r}")
        self.trail.append(f"{label}: {value!r}")
        return value

    def inject(self, kind: str, count: int = 1) -> None:
        self.faults[kind] += count

    def reset(self) -> None:
        """A clean world: empty table, queues, bucket prefix and index; this example's catalog config."""
        from handlers import _shared

        world = self.world
        world.dynamodb.delete_table(TableName=TABLE)
        create_table(world.dynamodb)
        for url in [*world.queues.values(), *world.dead_letters.values()]:  # PurgeQueue allows one a minute
            while messages := world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
                for message in messages:
                    world.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        # Every object version and delete marker, whatever its prefix (drops, pushes, change archives, checkpoints,
        # claims, quarantine, configs): moto keeps them in memory, and thousands of examples would exhaust it.
        for page in world.s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET):
            for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                world.s3.delete_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])
        world.pinecone.namespaces.clear()
        world.pinecone.failures.clear()
        world.pinecone.requests.clear()
        world.openai.failures.clear()
        world.openai.requests.clear()
        for throttler in world.throttlers.values():
            throttler.armed = 0
        self.config = draw_config(self.draw)
        text = self.config.toml(openai_url=world.openai.base_url, dimensions=DIMENSIONS)
        world.s3.put_object(Bucket=BUCKET, Key=f"config/{CATALOG}.toml", Body=text.encode())
        _shared.pipeline()._configs.clear()  # a warm function would read it within its cache's 5 minutes
        self._delivered_before = {
            "openai": Counter(world.openai.faults_delivered),
            "pinecone": Counter(world.pinecone.faults_delivered),
            **{service: throttler.delivered for service, throttler in world.throttlers.items()},
        }

    def delivered(self) -> Counter[str]:
        """The faults delivered in this example, by kind: the doubles' and the throttlers' counts, and the rest."""
        world = self.world
        faults = Counter(self.faults)
        for service, double in (("openai", world.openai), ("pinecone", world.pinecone)):
            before = self._delivered_before.get(service, Counter())
            assert isinstance(before, Counter)
            for status, count in (double.faults_delivered - before).items():
                faults[f"{service} {status}"] += count
        for service, throttler in world.throttlers.items():
            before_count = self._delivered_before.get(service, throttler.delivered)
            assert isinstance(before_count, int)
            if throttler.delivered > before_count:
                faults[f"{service} throttled"] += throttler.delivered - before_count
        return faults

    # ------------------------------------------------------------ lineages

    def invoked(self, payload: dict[str, Any]) -> None:
        """The product invoked the diff function asynchronously (a continuation, a repair)."""
        self.invocations.append((self.running[-1] if self.running else NOT_A_DROP, payload))

    def unfinished(self, drop: int) -> bool:
        return (
            any(lineage == drop for lineage, _ in self.drops)
            or any(lineage == drop for lineage, _ in self.invocations)
            or any(lineage == drop for lineage, _ in self.diff_failures)
            or drop in self.running
        )

    def _work_begins(self, lineage: int) -> None:
        if lineage == NOT_A_DROP:
            return
        if lineage < self.begun:
            self.inject("drop's work ran after a newer drop's diff began")
        self.begun = max(self.begun, lineage)
        for older in range(1, lineage):
            if older not in self.overtakable and self.unfinished(older):
                self.overtakable.add(older)
                self.inject("drop overtaken: a newer drop's diff began before its work was done")

    # ------------------------------------------------------------ fault hooks (called from the patched adapters)

    def at_index_write(self) -> None:
        if self.crash == "before write":
            self.crash = None
            self.inject("consumer crashed before its index write")
            raise LambdaCrash("consumer crashed before its index write")
        self._maybe_race("an index write")

    def at_commit(self) -> None:
        if self.crash == "after write":
            self.crash = None
            self.inject("consumer crashed after its index write, before the commit")
            raise LambdaCrash("consumer crashed after its index write, before the commit")

    def at_desired_write(self) -> None:
        self._maybe_race("a desired-state write")

    def _maybe_race(self, where: str) -> None:
        if not self.race or self.depth > 0:
            return
        self.race = False
        self.depth += 1
        try:
            if self.step(nested=True):
                self.inject(f"another invocation ran during {where}")
        finally:
            self.depth -= 1

    def arm_faults(self) -> None:
        if self.calm:
            self.crash, self.race = None, False
            return
        world = self.world
        for service, throttler in world.throttlers.items():
            throttler.armed = self.draw(st.sampled_from([0, 0, 0, 1, 2, 3]), f"{service} throttles")
        world.openai.failures.extend(
            self.draw(st.sampled_from([[], [], [], [429], [500, 429], [429] * 8]), "openai failures")
        )
        world.pinecone.failures.extend(
            self.draw(st.sampled_from([[], [], [], [429], [503, 500], [500] * 8]), "pinecone failures")
        )
        self.crash = self.draw(st.sampled_from([None, None, None, None, "before write", "after write"]), "crash")
        self.race = self.draw(st.integers(0, 4), "race") == 0

    # ------------------------------------------------------------ actions

    def drop_next(self) -> None:
        """The next catalog version lands in S3: its event is queued for the diff function, in order."""
        records = self.versions[self.dropped]
        number = self.dropped + 1
        # A JSON Lines drop, or a JSON array for an empty catalog (an empty .jsonl object is refused as broken).
        suffix = "jsonl" if records else "json"
        when = "seconds later"
        if SAME_SECOND_DROPS and self.keys:
            when = self.draw(
                st.sampled_from(["seconds later"] * 4 + ["same second", "same second, same object"]), "drop"
            )
        if when == "same second, same object" and self.keys[-1].endswith(f".{suffix}"):
            key = self.keys[-1]  # the same key again, within the second: only the sequencer orders the two
            self.inject("drops within one second: one object written twice")
        elif when.startswith("same second"):
            key = f"catalogs/{CATALOG}/v{number}.{suffix}"  # within the second: the greater key is the newer
            self.inject("drops within one second: two objects")
        else:
            self.world.s3_clock += timedelta(seconds=5)  # S3 stamps objects to the second
            key = f"catalogs/{CATALOG}/v{number}.{suffix}"
        body = b"".join(orjson.dumps(record) + b"\n" for record in records) if records else b"[]"
        version = self.world.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["VersionId"]
        event = json.loads((EVENTS / "eventbridge-s3-object-created.json").read_text())
        event["detail"]["bucket"]["name"] = BUCKET
        self.sequencer += 1  # S3's sequencer grows with each event of a key (hex, compared after padding)
        event["detail"]["object"].update(
            {"key": key, "version-id": version, "size": len(body), "sequencer": f"{self.sequencer:018X}"}
        )
        self.keys.append(key)
        self.drops.append((number, event))
        self.dropped += 1

    def run_diff(self, lineage: int, payload: dict[str, Any]) -> None:
        from handlers import diff

        looks = None if self.calm else self.draw(st.sampled_from([None, None, 1, 2]), "diff looks at its clock")
        context = Context() if looks is None else _Clock(looks_left=looks)
        if not self.calm and self.depth == 0:
            self.race = self.draw(st.integers(0, 4), "race") == 0  # at its desired-state write
        attempts = payload.pop("_attempts", 0)
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    diff ({lineage}) invoked with {str(payload)[:300]}")
        self._work_begins(lineage)
        self.running.append(lineage)
        try:
            result = diff.handler(payload, context)
        except (LambdaCrash, Exception) as exc:
            # Lambda retries a failed asynchronous invocation twice, then sends it to the on-failure destination,
            # from which it is redriven (here: after the drain).
            self.inject(f"diff invocation failed ({type(exc).__name__}), retried")
            if os.environ.get("CONVERGENCE_TRACE"):
                print(f"    diff failed: {exc!r}")
            retry = {**payload, "_attempts": attempts + 1}
            (self.invocations if attempts < 2 else self.diff_failures).append((lineage, retry))
            return
        finally:
            self.running.pop()
            if self.depth == 0:
                self.race = False
            if isinstance(context, _Clock) and context.ran_out:
                self.inject("diff ran out of time part way")
        assert result["status"] == "ok", result
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    diff result: {str(result)[:400]}")
        for run in result.get("runs", []):
            assert run["status"] != "bad_input", run

    def deliver(self) -> bool:
        """One invocation of the consumer by an event source mapping: a batch from one lane."""
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        from handlers import consumer

        world = self.world
        lanes = list(world.queues)
        first = lanes[-1] if self.calm else self.draw(st.sampled_from(lanes), "lane")
        size = 10 if self.calm else self.draw(st.integers(1, 10), "batch size")
        records: list[dict[str, Any]] = []
        handles: dict[str, tuple[str, str]] = {}
        template = json.loads((EVENTS / "sqs-receive-message.json").read_text())["Records"][0]
        for lane in [first, *(lane for lane in lanes if lane != first)]:
            url = world.queues[lane]
            messages = world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=size).get("Messages", [])
            for message in messages:
                record = copy.deepcopy(template)
                record.update(messageId=message["MessageId"], receiptHandle=message["ReceiptHandle"])
                record["body"] = message["Body"]
                records.append(record)
                handles[message["MessageId"]] = (url, message["ReceiptHandle"])
            if records:
                break
        if self.ghosts and not self.calm and self.draw(st.booleans(), "deliver a duplicate"):
            records.append(self.ghosts.pop(self.draw(st.integers(0, len(self.ghosts) - 1), "which duplicate")))
            self.inject("duplicate delivery")
        if not records:
            return False
        if not self.calm and self.draw(st.integers(0, 3), "keep a duplicate") == 0:
            self.ghosts.append(copy.deepcopy(records[self.draw(st.integers(0, len(records) - 1), "duplicated")]))
        if len(records) > 1 and not self.calm:
            order = self.draw(st.permutations(range(len(records))), "delivery order")
            records = [records[i] for i in order]
        self.arm_faults()
        # A nested invocation stands for another execution environment: its own batch processor (module state).
        outer = consumer.processor
        if self.depth > 0:
            consumer.processor = BatchProcessor(event_type=EventType.SQS)
        self.running.append(NOT_A_DROP)
        try:
            response = consumer.handler({"Records": records}, Context())
        except LambdaCrash:
            return True  # nothing acknowledged: every message comes back
        except BatchProcessingError:
            return True  # every record failed: the batch comes back
        finally:
            self.running.pop()
            self.crash, self.race = None, False
            consumer.processor = outer
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        if os.environ.get("CONVERGENCE_TRACE"):
            print(f"    delivered {[r['messageId'][:8] for r in records]}, failed {[f[:8] for f in failed]}")
        for message_id, (url, handle) in handles.items():
            if message_id not in failed:
                with contextlib.suppress(ClientError):  # a handle from an earlier delivery may be stale
                    world.sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        return True

    def queued(self) -> int:
        total = 0
        for url in self.world.queues.values():
            attributes = self.world.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            total += int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
        return total

    def step(self, *, nested: bool = False) -> bool:
        """One thing happens; False when there was nothing to do."""
        choices: list[str] = []
        if self.dropped < len(self.versions):
            choices.append("drop")
        if self.drops:
            choices.append("diff of the oldest drop")
        if self.invocations:
            choices.append("pending invocation")
        if self.queued() or self.ghosts:
            choices.append("deliver")
        if not choices:
            return False
        choice = self.draw(st.sampled_from(choices), "nested step" if nested else "step")
        if choice == "drop":
            self.drop_next()
            if nested:  # a drop lands while something runs: its diff starts at once (an overlapping run)
                self.run_diff(*self.drops.pop())
        elif choice == "diff of the oldest drop":
            self.run_diff(*self.drops.pop(0))
        elif choice == "pending invocation":
            # Lambda's asynchronous queue keeps no order: continuations and repairs run in any order.
            self.run_diff(*self.invocations.pop(self.draw(st.integers(0, len(self.invocations) - 1), "invocation")))
        else:
            self.deliver()
        return True

    # ------------------------------------------------------------ the example

    def run(self) -> None:
        self.reset()
        self.world.scenario = self
        try:
            steps = 0
            while self.dropped < len(self.versions) or self.drops:
                self.step()
                steps += 1
                assert steps < 400, "the scenario does not progress"
            # Drain: faults go on for a while, then stop, as they do.
            for _ in range(self.draw(st.integers(0, 15), "noisy drain steps")):
                if not self.step():
                    break
            self.calm = True
            self.drain()
            for _ in range(5):
                if not self.redrive():
                    break
                self.drain()
            assert self.dead_lettered() == 0, "messages stay dead-lettered after redrives"
        finally:
            self.world.scenario = None

    def drain(self) -> None:
        for _ in range(300):  # calm: every delivery succeeds; a few dozen steps drain the largest example
            if self.invocations:
                self.run_diff(*self.invocations.pop(0))
            elif not self.deliver():
                return
        raise AssertionError("the queues do not drain")

    def waiting(self, url: str) -> int:
        attributes = self.world.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def dead_lettered(self) -> int:
        return sum(self.waiting(url) for url in self.world.dead_letters.values())

    def redrive(self) -> int:
        from catalog_sync.adapters.aws.sqs_queue import redrive_dead_letters

        moved = len(self.diff_failures)
        self.invocations.extend((lineage, {**payload, "_attempts": 0}) for lineage, payload in self.diff_failures)
        self.diff_failures.clear()
        for lane, dlq in self.world.dead_letters.items():
            waiting = self.waiting(dlq)
            if waiting:  # moto's long poll of an empty queue is not thread-safe: never ask for more than is there
                redrive_dead_letters(
                    self.world.sqs, dead_letter_url=dlq, target_url=self.world.queues[lane], limit=waiting
                )
                moved += waiting
        if moved:
            self.inject("message dead-lettered, then redriven", moved)
        return moved


def run_example(world: World, versions: list[list[dict[str, Any]]], data: st.DataObject) -> None:
    """One example, end to end, counted in the world's fault log (an example hypothesis abandons is not)."""
    scenario = Scenario(world, data, versions)
    try:
        scenario.run()
        check_converged(world, scenario)
    except Exception:
        draws = json.dumps([scenario.trail, scenario.versions], default=repr)
        world.log.example_ended(converged=False, faults=scenario.delivered(), draws=draws)
        note(describe(world, scenario))
        raise
    except BaseException:
        world.log.example_abandoned()
        raise
    world.log.example_ended(converged=True, faults=scenario.delivered())
