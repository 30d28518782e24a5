"""A discrete-event model of the consumer side of the AWS pipeline: queues, event source mappings, consumers, and
the services they call, on a virtual clock (nothing sleeps).

What is modelled, and where each number comes from:

- Queues (infra/stack.py): two standard queues, the priority and the normal lane, each with a dead-letter queue
  after `max_receive_count` receives and the visibility timeout the stack sets (`StackConfig.
  visibility_timeout_seconds`: 6 x the consumer's timeout + the batching window). A failed message (reported in
  `batchItemFailures`) or every message of an invocation that timed out becomes visible again when its
  visibility timeout ends; a message received `max_receive_count` times that comes back goes to the DLQ.
- Event source mappings (infra/stack.py): per queue, at most `RateLimits.per_queue_concurrency()` concurrent
  invocations (the stack's own derivation, imported), each with up to `batch_size` messages gathered for at
  most `batching_window_seconds`, and at most 6 MB of event payload (Lambda's invocation payload limit), so
  1 MiB messages come at most five or six to a batch.
- The consumer (handlers/consumer.py, services/apply.py): records one after the other; per message: cpu for
  unpacking, desired_versions (BatchGetItem, 100 keys a call), cache reads (BatchGetItem, 100), on a miss the
  embedder's OpenAI requests one after the other then the cache writes (BatchWriteItem, 25), Pinecone upserts one
  after the other, metadata updates one request each in a pool of `PineconeVectorIndex.update_concurrency`
  threads (all run, the first failure is raised after: ThreadPoolExecutor.map), deletes (1,000 ids a request),
  desired_versions again, the commit (TransactWriteItems of 100, `state_concurrency` in parallel, each retried
  by the store on throttling), and record_progress (a TransactWriteItems then a GetItem). An exception fails
  the message; the others of the batch go on. An invocation past the function's timeout is killed: its whole
  batch comes back, and the next invocation on that slot is a cold start (a fresh process: fresh SDK retry
  budgets).
- Services: OpenAI enforces requests and tokens per minute (sliding 60 s windows of accepted requests; the
  bucket can be spent in a burst); Pinecone enforces, per namespace, 100 requests a second for each of upsert,
  update and delete (docs.pinecone.io, "Rate limits": data plane request-per-second limits) and 50 MB/s of
  upserts; both answer 429 beyond. DynamoDB (on demand) is not rate limited here. Independently, each request
  attempt to any of the three is answered 429 (ThrottlingException for DynamoDB) with probability `throttle`:
  the injected throttling, counted apart from the services' own rate-limit 429s.
- Pacing (catalog_sync/resilience/pacing.py, the product's own `Pacer` on the virtual clock): each Lambda instance
  has one pacer for OpenAI (requests and tokens per minute) and one for the Pinecone namespace (write requests
  and upserted bytes per second, upsert, update and delete together), with the shares the stack sets in the
  consumer's environment (`StackConfig.consumer_environment`, read through `PipelineSettings`), started full as
  `Pipeline.embedder`/`Pipeline.index` make them. Every attempt waits for room, the SDKs' retries included (the
  product paces in the OpenAI client's request hook and under pinecone's retry transport). The tokens an
  OpenAI request is paced as are the product's `pacing_tokens` of its inputs; its requests are packed by the
  product's embedder (to an eighth of the token share).
- Retries are the clients' own, taken from the installed packages and called here, in virtual time:
  * openai (openai/_base_client.py): `max_retries` from OpenAIEmbedder's default (6); a 429 is retried
    (`_should_retry`), after `_calculate_retry_timeout` (0.5 s x 2^n, at most 8 s, minus up to 25% jitter;
    no Retry-After header is assumed).
  * pinecone (pinecone/_internal/http_client.py, `_RetryTransport`): `RetryConfig()` (3 retries, 429
    retryable), delays by `_compute_retry_after_delay` (decorrelated jitter from 0.25 s, at most 60 s), and the
    per-host, per-process retry budget `_RetryBudget` (a retryable failure spends 1 token, a success earns
    0.1; no retry while the bucket is at or below half), one per Lambda instance.
  * botocore standard mode for DynamoDB (botocore/retries/standard.py; the default mode of the installed
    botocore): 4 attempts, `ExponentialBackoff.delay_amount` for throttling errors (rand x min(2^i, 20) s),
    and the client's `RetryQuota` (500; 5 per throttling retry, 1 back per first-time success), one per
    instance, with the product's `max_attempts` (`PipelineSettings.aws_max_attempts`, set on the Pipeline's
    clients). DynamoStateStore retries a transaction that still failed (6 attempts, 0.05 s x 2^n); the cache
    and the reads do not retry an error.
  * the Pinecone adapter retries a write the SDK gave up on with its `RetryPolicy` (resilience/policy.py), and
    once an update of a message gave up for good, the pool's remaining updates are not sent.
- Latencies (assumptions, log-normal around the median given, sigma 0.35): OpenAI 0.3 s + 1 s per 150k
  tokens (a full 2,048-input request of ~225k tokens: ~1.8 s); Pinecone upsert 60 ms + 1 s per 20 MB (a 2 MB
  request: ~160 ms), update 25 ms, delete 40 ms; DynamoDB BatchGetItem 8 ms, BatchWriteItem of 25 cached
  vectors 15 ms, TransactWriteItems of 100 items 30 ms, UpdateItem 6 ms; a 429 comes back in 20 ms (OpenAI
  100 ms); a cold start takes 1.5 s (imports of numpy, pydantic, openai, pinecone, boto3 from the layer); a
  warm invocation adds 20 ms. The handler's CPU per change is measured on this machine by running the real
  handler (`CpuCosts`), and stretched by 1,769 MB / the consumer's memory (Lambda's CPU share).
- The burst is in the queues at time 0 (the diff's dispatch is not modelled): drain time is from then until
  the last message is deleted or dead-lettered.
"""

from __future__ import annotations

import heapq
import inspect
import math
import random
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import httpx2
import numpy as np
import openai
from botocore.retries import quota as botocore_quota
from botocore.retries import standard as botocore_standard
from openai._models import FinalRequestOptions
from pinecone._internal.config import RetryConfig
from pinecone._internal.http_client import _compute_retry_after_delay, _RetryBudget

from catalog_sync.adapters.aws import dynamodb_cache, dynamodb_state
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.embedders.openai import REQUESTS, TOKENS, OpenAIEmbedder, openai_rates
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
from catalog_sync.adapters.pinecone.limits import pinecone_rates, write_costs
from catalog_sync.bootstrap.settings import PipelineSettings
from catalog_sync.resilience.pacing import Pacer
from catalog_sync.resilience.retry import RetryPolicy
from load_workload import MessageWork

# Lambda: the payload of one synchronous invocation, and what an SQS record adds to its body in the event.
INVOKE_PAYLOAD_LIMIT = 6 * 1024 * 1024
RECORD_OVERHEAD = 1024
# Lambda gives one full vCPU at 1,769 MB, and CPU in proportion to memory below that.
FULL_VCPU_MB = 1769
# Pinecone (docs.pinecone.io, rate limits): upsert size per second per namespace.
PINECONE_UPSERT_BYTES_PER_SECOND = 50_000_000
PINECONE_WRITES = ("upsert", "update", "delete")


def _default(function: Callable[..., Any], name: str) -> Any:
    return inspect.signature(function).parameters[name].default


# As Pipeline.index gives it to the index adapter: its default delays, the attempts of PipelineSettings.
PINECONE_RETRY: RetryPolicy = replace(
    _default(PineconeVectorIndex.__init__, "retry"),
    attempts=PipelineSettings.model_fields["pinecone_write_attempts"].default,
)


def consumer_settings(environment: dict[str, str]) -> PipelineSettings:
    """PipelineSettings as the consumer reads them from the environment the stack gives it (the variables that
    name resources, which the model has none of, are placeholders)."""
    placeholders = dict.fromkeys(
        ("table_name", "bucket", "queue_url", "priority_queue_url", "pinecone_host", "pinecone_secret"), "-"
    )
    prefix = PipelineSettings.model_config.get("env_prefix", "")
    values = {name.removeprefix(prefix).lower(): value for name, value in environment.items()}
    return PipelineSettings(**placeholders, **values)


# ---------------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class CpuCosts:
    """CPU seconds the consumer handler spends per change on this machine (unpacking, validation, the SDKs'
    request building and response parsing, the state and cache calls' serialisation), by kind of change.
    Measured by load_bench.py on the real handler (load_memory.measure_consumer); these defaults are one such
    measurement."""

    upsert: float = 0.0012
    update: float = 0.0004
    delete: float = 0.00005


@dataclass(frozen=True)
class LoadSettings:
    concurrency_per_queue: int
    batch_size: int
    batching_window_s: float
    visibility_timeout_s: float
    max_receive_count: int
    consumer_timeout_s: float
    consumer_memory_mb: int
    openai_rpm: int
    openai_tpm: int
    pinecone_rps: float  # per namespace, for each of upsert, update, delete
    # Each consumer's pacing: its share of each limit, as the consumer reads it from its environment
    # (PipelineSettings.pace_*; None: not paced).
    pace_openai_rpm: float | None = None
    pace_openai_tpm: float | None = None
    pace_pinecone_writes: float | None = None
    pace_pinecone_upsert_bytes: float | None = None
    # What the adapters run with in the pipeline (their defaults: Pipeline does not override them).
    update_concurrency: int = _default(PineconeVectorIndex.__init__, "update_concurrency")
    state_concurrency: int = PipelineSettings.model_fields["state_concurrency"].default
    state_attempts: int = _default(DynamoStateStore.__init__, "attempts")
    state_backoff_s: float = _default(DynamoStateStore.__init__, "backoff_seconds")
    openai_max_retries: int = _default(OpenAIEmbedder.__init__, "max_retries")
    pinecone_retry: RetryPolicy = PINECONE_RETRY
    # botocore's max_attempts for DynamoDB, as the Pipeline sets it on its client.
    dynamodb_max_attempts: int = PipelineSettings.model_fields["aws_max_attempts"].default
    cpu: CpuCosts = CpuCosts()
    # The services enforce their rate limits (off only to show that the checks below catch an excess).
    enforce_limits: bool = True

    @classmethod
    def from_stack(cls, config: Any, **overrides: Any) -> LoadSettings:
        """From infra's StackConfig (infra/stack.toml, validated by infra/config.py), and the pacing the consumer
        reads from the environment the stack gives it."""
        pacing = consumer_settings(config.consumer_environment())
        values: dict[str, Any] = {
            "concurrency_per_queue": config.limits.per_queue_concurrency(),
            "batch_size": config.consumer_batch_size,
            "batching_window_s": float(config.queues.batching_window_seconds),
            "visibility_timeout_s": float(config.visibility_timeout_seconds),
            "max_receive_count": config.queues.max_receive_count,
            "consumer_timeout_s": float(config.functions.consumer.timeout_seconds),
            "consumer_memory_mb": config.functions.consumer.memory_mb,
            "openai_rpm": config.limits.openai_requests_per_minute,
            "openai_tpm": config.limits.openai_tokens_per_minute,
            "pinecone_rps": config.limits.pinecone_write_requests_per_second,
            "pace_openai_rpm": pacing.pace_openai_requests_per_minute,
            "pace_openai_tpm": pacing.pace_openai_tokens_per_minute,
            "pace_pinecone_writes": pacing.pace_pinecone_writes_per_second,
            "pace_pinecone_upsert_bytes": pacing.pace_pinecone_upsert_bytes_per_second,
        }
        values.update(overrides)
        return cls(**values)

    def unpaced(self) -> LoadSettings:
        """The consumers without pacing (to compare, and to show the checks catch an excess)."""
        return replace(
            self, pace_openai_rpm=None, pace_openai_tpm=None, pace_pinecone_writes=None, pace_pinecone_upsert_bytes=None
        )

    @property
    def paced(self) -> bool:
        return any(
            v is not None
            for v in (
                self.pace_openai_rpm,
                self.pace_openai_tpm,
                self.pace_pinecone_writes,
                self.pace_pinecone_upsert_bytes,
            )
        )

    @property
    def cpu_stretch(self) -> float:
        return FULL_VCPU_MB / min(self.consumer_memory_mb, FULL_VCPU_MB)

    @property
    def clients(self) -> int:
        """Consumers that may run at once, both queues together: the limits are shared among them."""
        return 2 * self.concurrency_per_queue


@dataclass(frozen=True)
class Latencies:
    """Medians in seconds (log-normal, `sigma`); see the module docstring."""

    sigma: float = 0.35
    openai: float = 0.3
    openai_tokens_per_second: float = 150_000
    openai_429: float = 0.1
    upsert: float = 0.06
    upsert_bytes_per_second: float = 20e6
    update: float = 0.025
    delete: float = 0.04
    pinecone_429: float = 0.02
    batch_get: float = 0.008
    batch_write: float = 0.015
    transact: float = 0.030
    update_item: float = 0.006
    dynamodb_429: float = 0.02
    cold_start: float = 1.5
    invoke: float = 0.02
    poll: float = 0.02


# ---------------------------------------------------------------------------------------------------- engine


class Signal:
    """Something processes wait for; fired once (later fires find no waiters)."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[Callable[[Any], None]] = []


class Killed:
    """The context of an invocation: its processes stop when it is killed (the function timed out)."""

    __slots__ = ("finished", "killed")

    def __init__(self) -> None:
        self.killed = False
        self.finished = False


Step = Generator[Any, Any, Any]


class Engine:
    """Generator processes on a virtual clock. A process yields a float (wait that long), a Signal (wait for
    it), or a list of generators (run them as child processes, resume with [(value, error)] when all end)."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = 0
        self.events = 0

    def at(self, when: float, action: Callable[[Any], None], value: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, action, value))

    def fire(self, signal: Signal, value: Any = None) -> None:
        waiters, signal.waiters = signal.waiters, []
        for waiter in waiters:
            self.at(self.now, waiter, value)

    def spawn(
        self, step: Step, ctx: Killed | None = None, done: Callable[[Any, BaseException | None], None] | None = None
    ) -> None:
        _Process(self, step, ctx, done)

    def run(self, progress: Callable[[float], None] | None = None, every: float = 600.0) -> None:
        heap = self._heap
        mark = every
        while heap:
            when, _, action, value = heapq.heappop(heap)
            self.now = when
            self.events += 1
            action(value)
            if progress is not None and when >= mark:
                progress(when)
                mark = (when // every + 1) * every


class _Process:
    __slots__ = ("ctx", "done", "engine", "step")

    def __init__(
        self,
        engine: Engine,
        step: Step,
        ctx: Killed | None,
        done: Callable[[Any, BaseException | None], None] | None,
    ) -> None:
        self.engine, self.step, self.ctx, self.done = engine, step, ctx, done
        engine.at(engine.now, self.resume)

    def resume(self, value: Any) -> None:
        if self.ctx is not None and self.ctx.killed:
            self.step.close()
            return
        try:
            command = self.step.send(value)
        except StopIteration as stop:
            if self.done is not None:
                self.done(stop.value, None)
            return
        except RequestFailed as exc:
            if self.done is None:
                raise
            self.done(None, exc)
            return
        engine = self.engine
        if type(command) is float or type(command) is int:
            engine.at(engine.now + command, self.resume)
        elif type(command) is Signal:
            command.waiters.append(self.resume)
        elif type(command) is list:
            self._join(command)
        else:
            raise TypeError(f"a process yielded {command!r}")

    def _join(self, children: list[Step]) -> None:
        results: list[Any] = [None] * len(children)
        pending = [len(children)]
        if not children:
            self.engine.at(self.engine.now, self.resume, results)
            return

        def finished(position: int) -> Callable[[Any, BaseException | None], None]:
            def record(value: Any, error: BaseException | None) -> None:
                results[position] = (value, error)
                pending[0] -= 1
                if pending[0] == 0:
                    self.engine.at(self.engine.now, self.resume, results)

            return record

        for position, child in enumerate(children):
            _Process(self.engine, child, self.ctx, finished(position))


class RequestFailed(Exception):
    """A request gave up (its client's retries exhausted, or none allowed): the message fails."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


# ---------------------------------------------------------------------------------------------------- services


class _Window:
    """Sliding sum of what a service accepted over the last `span` seconds."""

    __slots__ = ("items", "span", "total")

    def __init__(self, span: float) -> None:
        self.span = span
        self.items: deque[tuple[float, float]] = deque()
        self.total = 0.0

    def current(self, now: float) -> float:
        items = self.items
        while items and items[0][0] <= now - self.span:
            self.total -= items.popleft()[1]
        return self.total

    def add(self, now: float, amount: float) -> None:
        self.items.append((now, amount))
        self.total += amount


@dataclass
class Log:
    """Every attempt a client sent (time, amount), and those the service accepted, per service and operation."""

    sent: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    accepted: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def record(self, name: str, now: float, amount: float, ok: bool) -> None:
        self.sent.setdefault(name, []).append((now, amount))
        if ok:
            self.accepted.setdefault(name, []).append((now, amount))


OK, THROTTLED = 200, 429


class Services:
    """OpenAI, Pinecone (one namespace) and DynamoDB as the consumers meet them: rate limits and injected 429s."""

    def __init__(self, settings: LoadSettings, throttle: float, rng: random.Random, stats: Stats) -> None:
        self.settings = settings
        self.throttle = throttle
        self.rng = rng
        self.stats = stats
        self.log = Log()
        self.openai_requests = _Window(60.0)
        self.openai_tokens = _Window(60.0)
        self.pinecone = {op: _Window(1.0) for op in PINECONE_WRITES}
        self.pinecone_bytes = _Window(1.0)

    def _injected(self, service: str) -> bool:
        if self.throttle and self.rng.random() < self.throttle:
            self.stats.injected[service] = self.stats.injected.get(service, 0) + 1
            return True
        return False

    def _limited(self, name: str) -> int:
        self.stats.rate_limited[name] = self.stats.rate_limited.get(name, 0) + 1
        return THROTTLED

    def openai(self, now: float, tokens: int) -> int:
        if self._injected("openai"):
            self.log.record("openai", now, tokens, False)
            return THROTTLED
        s = self.settings
        if s.enforce_limits and (
            self.openai_requests.current(now) + 1 > s.openai_rpm
            or self.openai_tokens.current(now) + tokens > s.openai_tpm
        ):
            self.log.record("openai", now, tokens, False)
            return self._limited("openai")
        self.openai_requests.add(now, 1)
        self.openai_tokens.add(now, tokens)
        self.log.record("openai", now, tokens, True)
        return OK

    def pinecone_write(self, now: float, op: str, size: int) -> int:
        if self._injected("pinecone"):
            self.log.record(op, now, size, False)
            return THROTTLED
        window = self.pinecone[op]
        if self.settings.enforce_limits and (
            window.current(now) + 1 > self.settings.pinecone_rps
            or (op == "upsert" and self.pinecone_bytes.current(now) + size > PINECONE_UPSERT_BYTES_PER_SECOND)
        ):
            self.log.record(op, now, size, False)
            return self._limited(f"pinecone {op}")
        window.add(now, 1)
        if op == "upsert":
            self.pinecone_bytes.add(now, size)
        self.log.record(op, now, size, True)
        return OK

    def dynamodb(self, now: float) -> int:
        self.stats.dynamodb_requests += 1
        return THROTTLED if self._injected("dynamodb") else OK


# ---------------------------------------------------------------------------------------------------- clients' retries


class _AlwaysThrottling:
    """botocore's throttling detector, for the only error modelled on DynamoDB: ThrottlingException."""

    def is_throttling_error_from_context(self, context: Any) -> bool:
        return True


class _Attempt:
    def __init__(self, number: int) -> None:
        self.attempt_number = number
        self.http_response = None


class Retries:
    """The SDKs' own retry decisions and delays, called from the installed packages."""

    def __init__(self, settings: LoadSettings) -> None:
        self.openai_client = openai.OpenAI(api_key="load-model", max_retries=settings.openai_max_retries)
        self.openai_options = FinalRequestOptions.construct(method="post", url="/embeddings")
        request = httpx2.Request("POST", "https://api.openai.com/v1/embeddings")
        self.openai_retries_429 = self.openai_client._should_retry(httpx2.Response(THROTTLED, request=request))
        self.pinecone_config = RetryConfig()
        self.pinecone_429 = httpx.Response(THROTTLED)
        self.pinecone_retries_429 = THROTTLED in self.pinecone_config.retryable_status_codes
        self.dynamodb_max_attempts = botocore_standard._SERVICE_MAX_ATTEMPTS["dynamodb"]
        self.dynamodb_backoff = botocore_standard.ExponentialBackoff(
            service_name="dynamodb", throttling_detector=_AlwaysThrottling()
        )
        self.dynamodb_retry_cost = botocore_standard.RetryQuotaChecker._THROTTLING_RETRY_COST
        self.dynamodb_no_retry_increment = botocore_standard.RetryQuotaChecker._NO_RETRY_INCREMENT

    def openai_delay(self, retries_taken: int) -> float:
        max_retries = self.openai_client.max_retries
        return float(self.openai_client._calculate_retry_timeout(max_retries - retries_taken, self.openai_options))

    def pinecone_delay(self, attempt: int, previous: float | None) -> float:
        return float(_compute_retry_after_delay(self.pinecone_config, self.pinecone_429, attempt, previous))

    def dynamodb_delay(self, attempt_number: int) -> float:
        return float(self.dynamodb_backoff.delay_amount(_Attempt(attempt_number)))


class Instance:
    """One Lambda execution environment: the process-wide state of its SDK clients (retry budgets) and its
    pacers (one for OpenAI, one for the Pinecone namespace, as `Pipeline` shares them in a process)."""

    def __init__(self, settings: LoadSettings, clock: Callable[[], float]) -> None:
        self.cold = True
        self.pinecone_budget = _RetryBudget()
        self.dynamodb_quota = botocore_quota.RetryQuota()
        self.pacers: dict[str, Pacer] = {}
        openai_pace = openai_rates(settings.pace_openai_rpm, settings.pace_openai_tpm)
        pinecone_pace = pinecone_rates(settings.pace_pinecone_writes, settings.pace_pinecone_upsert_bytes)
        for name, rates in (("openai", openai_pace), ("pinecone", pinecone_pace)):
            if any(rate is not None for rate in rates.values()):
                self.pacers[name] = Pacer(rates, clock=clock, start_full=True)


# ---------------------------------------------------------------------------------------------------- queues


@dataclass(eq=False)
class Message:
    work: MessageWork
    receives: int = 0
    received_at: float = 0.0
    cached: bool = False  # its embeddings are in the cache (a previous attempt wrote them)
    done_at: float | None = None
    dead: bool = False


class Queue:
    def __init__(self, name: str, messages: Iterable[Message]) -> None:
        self.name = name
        self.visible: deque[Message] = deque(messages)
        self.total = len(self.visible)
        self.remaining = self.total
        self.watchers: list[Signal] = []
        self.deleted = 0
        self.dead_lettered = 0
        self.drained_at = 0.0


# ---------------------------------------------------------------------------------------------------- the model


@dataclass
class Stats:
    invocations: int = 0
    cold_starts: int = 0
    timeouts: int = 0
    receives: int = 0
    message_failures: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    injected: dict[str, int] = field(default_factory=dict)
    rate_limited: dict[str, int] = field(default_factory=dict)
    gave_up: dict[str, int] = field(default_factory=dict)
    dynamodb_requests: int = 0
    paced_s: float = 0.0
    max_invocation_s: float = 0.0
    batch_sizes: list[int] = field(default_factory=list)

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class LoadModel:
    def __init__(
        self,
        messages: Sequence[MessageWork],
        settings: LoadSettings,
        *,
        throttle: float,
        seed: int,
        latencies: Latencies | None = None,
    ) -> None:
        self.settings = settings
        self.latencies = latencies or Latencies()
        self.engine = Engine()
        self.rng = random.Random(seed)
        random.seed(seed)  # the SDKs draw their jitter from the global generator
        self.stats = Stats()
        self.services = Services(settings, throttle, random.Random(seed + 1), self.stats)
        self.retries = Retries(settings)
        self.messages = [Message(work) for work in messages]
        self.queues = {lane: Queue(lane, [m for m in self.messages if m.work.lane == lane]) for lane in ("p", "n")}

    # ------------------------------------------------------------ timing

    def _clock(self) -> float:
        return self.engine.now

    def _lat(self, median: float) -> float:
        return median * math.exp(self.latencies.sigma * self.rng.gauss(0.0, 1.0))

    # ------------------------------------------------------------ requests with the clients' retries

    def paced(self, instance: Instance, service: str, costs: dict[str, float]) -> Step:
        """Wait until the instance's pacer for the service has room for the costs, and take it (Pacer.acquire)."""
        pacer = instance.pacers.get(service)
        if pacer is None:
            return
        while True:
            delay = pacer.try_take(costs)
            if delay <= 0:
                return
            self.stats.paced_s += delay
            yield delay

    def openai_request(self, instance: Instance, tokens: int, paced_tokens: int) -> Step:
        lat, now = self.latencies, self.engine
        for retries_taken in range(self.settings.openai_max_retries + 1):
            yield from self.paced(instance, "openai", {REQUESTS: 1.0, TOKENS: float(paced_tokens)})
            status = self.services.openai(now.now, tokens)
            if status == OK:
                yield self._lat(lat.openai) + tokens / lat.openai_tokens_per_second
                return
            yield self._lat(lat.openai_429)
            if retries_taken < self.settings.openai_max_retries and self.retries.openai_retries_429:
                self.stats.count(self.stats.retries, "openai")
                yield self.retries.openai_delay(retries_taken)
        self.stats.count(self.stats.gave_up, "openai")
        raise RequestFailed("openai")

    def pinecone_request(self, instance: Instance, op: str, size: int = 0) -> Step:
        lat = self.latencies
        budget = instance.pinecone_budget
        previous: float | None = None
        max_retries = self.retries.pinecone_config.max_retries
        costs = write_costs(f"/vectors/{op}", size) or {}
        for attempt in range(max_retries + 1):
            yield from self.paced(instance, "pinecone", costs)
            status = self.services.pinecone_write(self.engine.now, op, size)
            if status == OK:
                if op == "upsert":
                    yield self._lat(lat.upsert) + size / lat.upsert_bytes_per_second
                else:
                    yield self._lat(lat.update if op == "update" else lat.delete)
                budget.record_success()
                return
            yield self._lat(lat.pinecone_429)
            budget.record_failure()
            if attempt < max_retries and self.retries.pinecone_retries_429 and budget.allows_retry():
                previous = self.retries.pinecone_delay(attempt, previous)
                self.stats.count(self.stats.retries, "pinecone")
                yield previous
            else:
                break
        self.stats.count(self.stats.gave_up, f"pinecone {op}")
        raise RequestFailed(f"pinecone {op}")

    def dynamodb_request(self, instance: Instance, op: str, median: float) -> Step:
        quota = instance.dynamodb_quota
        max_attempts = self.settings.dynamodb_max_attempts
        capacity: int | None = None
        attempt_number = 1
        while True:
            status = self.services.dynamodb(self.engine.now)
            if status == OK:
                yield self._lat(median)
                quota.release(self.retries.dynamodb_no_retry_increment if capacity is None else capacity)
                return
            yield self._lat(self.latencies.dynamodb_429)
            if attempt_number >= max_attempts or not quota.acquire(self.retries.dynamodb_retry_cost):
                break
            capacity = self.retries.dynamodb_retry_cost
            self.stats.count(self.stats.retries, "dynamodb")
            yield self.retries.dynamodb_delay(attempt_number)
            attempt_number += 1
        self.stats.count(self.stats.gave_up, f"dynamodb {op}")
        raise RequestFailed(f"dynamodb {op}")

    def transaction(self, instance: Instance) -> Step:
        """DynamoStateStore._transact: botocore's retries, then its own on a retryable error."""
        attempt = 0
        while True:
            try:
                yield from self.dynamodb_request(instance, "TransactWriteItems", self.latencies.transact)
                return
            except RequestFailed:
                attempt += 1
                if attempt >= self.settings.state_attempts:
                    raise
                yield self.settings.state_backoff_s * 2**attempt

    def pool(self, workers: int, tasks: int, task: Callable[[], Step], *, stop_on_failure: bool = False) -> Step:
        """ThreadPoolExecutor(workers).map over the tasks inside `with`: every task runs (with `stop_on_failure`,
        as PineconeVectorIndex.update_metadata: none starts after one failed), then the first failure is raised."""
        remaining = [tasks]
        failures: list[RequestFailed] = []

        def worker() -> Step:
            while remaining[0] > 0:
                remaining[0] -= 1
                if stop_on_failure and failures:
                    continue
                try:
                    yield from task()
                except RequestFailed as exc:
                    failures.append(exc)

        yield [worker() for _ in range(min(workers, tasks))]
        if failures:
            raise failures[0]

    # ------------------------------------------------------------ the consumer

    def dynamodb(self, instance: Instance, op: str, median: float) -> Step:
        return self.dynamodb_request(instance, op, median)

    def pinecone(self, instance: Instance, op: str, size: int = 0) -> Step:
        """PineconeVectorIndex._write: the SDK's call (with its retries), retried by the adapter's RetryPolicy."""
        policy = self.settings.pinecone_retry
        for retry in range(policy.attempts):
            try:
                yield from self.pinecone_request(instance, op, size)
                return
            except RequestFailed:
                if retry == policy.attempts - 1:
                    raise
                self.stats.count(self.stats.retries, "pinecone adapter")
                yield policy.delay(retry, self.rng)

    def apply_message(self, instance: Instance, message: Message) -> Step:
        """record_handler -> ChangeApplier.apply for one message."""
        work, lat, s = message.work, self.latencies, self.settings
        cpu = s.cpu
        yield (work.upserts * cpu.upsert + work.updates * cpu.update + work.deletes * cpu.delete) * s.cpu_stretch
        for _ in range(math.ceil(work.ids / dynamodb_state.MAX_BATCH_GET)):
            yield from self.dynamodb(instance, "BatchGetItem", lat.batch_get)
        if work.cache_keys:
            for _ in range(math.ceil(work.cache_keys / dynamodb_cache.MAX_BATCH_GET)):
                yield from self.dynamodb(instance, "BatchGetItem", lat.batch_get)
            if not message.cached:
                paced_tokens = work.embed_paced_tokens or tuple(tokens for _, tokens in work.embed_requests)
                for (_inputs, tokens), paced in zip(work.embed_requests, paced_tokens, strict=True):
                    yield from self.openai_request(instance, tokens, paced)
                for _ in range(math.ceil(work.cache_keys / dynamodb_cache.MAX_BATCH_WRITE)):
                    yield from self.dynamodb(instance, "BatchWriteItem", lat.batch_write)
                message.cached = True
            for size in work.upsert_requests:
                yield from self.pinecone(instance, "upsert", size)
        if work.updates:
            yield from self.pool(
                s.update_concurrency, work.updates, lambda: self.pinecone(instance, "update"), stop_on_failure=True
            )
        for ids in work.delete_requests:
            yield from self.pinecone(instance, "delete", ids)
        for _ in range(math.ceil(work.ids / dynamodb_state.MAX_BATCH_GET)):
            yield from self.dynamodb(instance, "BatchGetItem", lat.batch_get)
        transactions = math.ceil(work.ids / dynamodb_state.MAX_TRANSACTION_ITEMS)
        yield from self.pool(s.state_concurrency, transactions, lambda: self.transaction(instance))
        # record_progress with the message's id: a TransactWriteItems (marker + counters; an error other than the
        # marker's condition is raised), then a consistent GetItem of the run.
        yield from self.dynamodb(instance, "TransactWriteItems", lat.update_item)
        yield from self.dynamodb(instance, "GetItem", lat.update_item)

    def invocation(self, instance: Instance, batch: list[Message]) -> Step:
        lat = self.latencies
        if instance.cold:
            self.stats.cold_starts += 1
            instance.cold = False
            yield self._lat(lat.cold_start)
        yield self._lat(lat.invoke)
        outcomes: list[str | None] = []
        for message in batch:
            try:
                yield from self.apply_message(instance, message)
                outcomes.append(None)
            except RequestFailed as exc:
                outcomes.append(exc.cause)
        return outcomes

    # ------------------------------------------------------------ queues and event source mappings

    def _notify(self, queue: Queue) -> None:
        watchers, queue.watchers = queue.watchers, []
        for signal in watchers:
            self.engine.fire(signal)

    def _take(self, queue: Queue, batch: list[Message], payload: list[int]) -> bool:
        """Receive visible messages into the batch; True when it is full (count or payload)."""
        now = self.engine.now
        while len(batch) < self.settings.batch_size and queue.visible:
            size = queue.visible[0].work.body_bytes + RECORD_OVERHEAD
            if batch and payload[0] + size > INVOKE_PAYLOAD_LIMIT:
                return True
            message = queue.visible.popleft()
            if message.receives >= self.settings.max_receive_count:
                # SQS moves it to the dead-letter queue instead of delivering it again.
                message.dead = True
                message.done_at = now
                queue.dead_lettered += 1
                self._finished(queue, message)
                continue
            message.receives += 1
            message.received_at = now
            self.stats.receives += 1
            batch.append(message)
            payload[0] += size
        return len(batch) >= self.settings.batch_size

    def _firing(self, signal: Signal) -> Callable[[Any], None]:
        def fire(_: Any) -> None:
            self.engine.fire(signal)

        return fire

    def _finished(self, queue: Queue, message: Message) -> None:
        queue.remaining -= 1
        if queue.remaining == 0:
            queue.drained_at = self.engine.now
            self._notify(queue)

    def _return_later(self, queue: Queue, message: Message) -> None:
        def back(_: Any) -> None:
            queue.visible.append(message)
            self._notify(queue)

        self.engine.at(message.received_at + self.settings.visibility_timeout_s, back)

    def slot(self, queue: Queue) -> Step:
        """One of the mapping's concurrent invocations, polling, invoking, and settling its batches."""
        engine, s = self.engine, self.settings
        instance = Instance(s, self._clock)
        while True:
            while not queue.visible:
                if queue.remaining == 0:
                    return
                signal = Signal()
                queue.watchers.append(signal)
                yield signal
            batch: list[Message] = []
            payload = [0]
            deadline = engine.now + s.batching_window_s
            while not self._take(queue, batch, payload) and engine.now < deadline:
                signal = Signal()
                queue.watchers.append(signal)
                engine.at(deadline, self._firing(signal))
                yield signal
            if not batch:
                continue
            self.stats.invocations += 1
            self.stats.batch_sizes.append(len(batch))
            started = engine.now
            ctx = Killed()
            ended = Signal()

            def done(value: Any, error: BaseException | None, ctx: Killed = ctx, ended: Signal = ended) -> None:
                ctx.finished = True
                engine.fire(ended, value if error is None else error)

            def timeout(_: Any, ctx: Killed = ctx, ended: Signal = ended) -> None:
                if not ctx.finished:
                    ctx.killed = True
                    engine.fire(ended, None)

            engine.spawn(self.invocation(instance, batch), ctx, done)
            engine.at(started + s.consumer_timeout_s, timeout)
            outcome = yield ended
            self.stats.max_invocation_s = max(self.stats.max_invocation_s, engine.now - started)
            if outcome is None:
                self.stats.timeouts += 1
                instance = Instance(s, self._clock)  # the runtime is restarted: a cold start, fresh SDK state
                for message in batch:
                    self.stats.count(self.stats.message_failures, "function timeout")
                    self._return_later(queue, message)
            else:
                for message, cause in zip(batch, outcome, strict=True):
                    if cause is None:
                        message.done_at = engine.now
                        queue.deleted += 1
                        self._finished(queue, message)
                    else:
                        self.stats.count(self.stats.message_failures, cause)
                        self._return_later(queue, message)
            yield self._lat(self.latencies.poll)

    def run(self, progress: Callable[[float, LoadModel], None] | None = None, every: float = 600.0) -> LoadResult:
        for queue in self.queues.values():
            for _ in range(self.settings.concurrency_per_queue):
                self.engine.spawn(self.slot(queue))
        self.engine.run((lambda now: progress(now, self)) if progress else None, every)
        return LoadResult.of(self)


# ---------------------------------------------------------------------------------------------------- results


def peak(events: Sequence[tuple[float, float]], span: float, *, amounts: bool = False) -> float:
    """The largest total over any window (t - span, t] of the events (counts, or their amounts)."""
    if not events:
        return 0.0
    data = np.asarray(events, dtype=np.float64)
    times = data[:, 0]
    starts = np.searchsorted(times, times - span, side="right")
    if not amounts:
        return float(np.max(np.arange(1, len(times) + 1) - starts))
    cumulative = np.concatenate(([0.0], np.cumsum(data[:, 1])))
    return float(np.max(cumulative[1:] - cumulative[starts]))


@dataclass
class LoadResult:
    settings: LoadSettings
    throttle: float
    messages: int
    changes: int
    drain_s: float
    lane_drain_s: dict[str, float]
    deleted: int
    dead_lettered: int
    dead_lettered_changes: int
    stats: Stats
    # name -> (sent peak, accepted peak, limit), per sliding window
    peaks: dict[str, tuple[float, float, float]]
    max_receives: int
    events: int

    @classmethod
    def of(cls, model: LoadModel) -> LoadResult:
        s, log = model.settings, model.services.log
        for queue in model.queues.values():
            if queue.remaining:
                raise AssertionError(f"queue {queue.name} still holds {queue.remaining} messages")
        peaks: dict[str, tuple[float, float, float]] = {
            "openai requests/min": (
                peak(log.sent.get("openai", []), 60.0),
                peak(log.accepted.get("openai", []), 60.0),
                float(s.openai_rpm),
            ),
            "openai tokens/min": (
                peak(log.sent.get("openai", []), 60.0, amounts=True),
                peak(log.accepted.get("openai", []), 60.0, amounts=True),
                float(s.openai_tpm),
            ),
        }
        for op in PINECONE_WRITES:
            peaks[f"pinecone {op}s/s"] = (
                peak(log.sent.get(op, []), 1.0),
                peak(log.accepted.get(op, []), 1.0),
                float(s.pinecone_rps),
            )
        peaks["pinecone upsert MB/s"] = (
            peak(log.sent.get("upsert", []), 1.0, amounts=True) / 1e6,
            peak(log.accepted.get("upsert", []), 1.0, amounts=True) / 1e6,
            PINECONE_UPSERT_BYTES_PER_SECOND / 1e6,
        )
        queues = model.queues.values()
        return cls(
            settings=s,
            throttle=model.services.throttle,
            messages=len(model.messages),
            changes=sum(m.work.changes for m in model.messages),
            drain_s=max(q.drained_at for q in queues),
            lane_drain_s={q.name: q.drained_at for q in queues},
            deleted=sum(q.deleted for q in queues),
            dead_lettered=sum(q.dead_lettered for q in queues),
            dead_lettered_changes=sum(m.work.changes for m in model.messages if m.dead),
            stats=model.stats,
            peaks=peaks,
            max_receives=max((m.receives for m in model.messages), default=0),
            events=model.engine.events,
        )

    def client_excess(self) -> list[str]:
        """Limits the clients' requests went over (sent, in any sliding window): the configured concurrency
        does not keep the consumers within the documented limits."""
        return [
            f"{name}: {sent:,.1f} sent > {limit:,.0f}" for name, (sent, _, limit) in self.peaks.items() if sent > limit
        ]

    def service_excess(self) -> list[str]:
        """Limits the services accepted more than (impossible while they enforce them: a check of the model)."""
        return [
            f"{name}: {accepted:,.1f} accepted > {limit:,.0f}"
            for name, (_, accepted, limit) in self.peaks.items()
            if accepted > limit
        ]
