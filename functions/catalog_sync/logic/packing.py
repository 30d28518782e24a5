"""Packing changes into batches and queue messages."""

from __future__ import annotations

import base64
import binascii
import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from catalog_sync.models.changes import Change

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items from any iterable (a spool, say)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def bounded_batches(
    items: Iterable[T], *, size_of: Callable[[T], int], max_items: int, max_bytes: int
) -> Iterator[list[T]]:
    """Consecutive batches within a count and a byte limit, as a service's batch call requires.

    An item larger than `max_bytes` on its own is refused: no batch could carry it.
    """
    batch: list[T] = []
    total = 0
    for item in items:
        size = size_of(item)
        if size > max_bytes:
            raise ValueError(f"an item of {size:,} bytes exceeds the {max_bytes:,}-byte limit of a batch")
        if batch and (len(batch) >= max_items or total + size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(item)
        total += size
    if batch:
        yield batch


def batches(changes: Sequence[Change], size: int) -> Iterator[Sequence[Change]]:
    """Consecutive batches of at most `size` changes."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(changes), size):
        yield changes[start : start + size]


# ---------------------------------------------------------------- queue messages

MESSAGE_FORMAT = 1
_COMPRESSED_PREFIX = "gz:"


@dataclass(frozen=True)
class PackedMessage:
    """One queue message: a deterministic id (run, lane, sequence: packing the same changes again in the
    same run gives the same ids) and its body."""

    message_id: str
    body: str
    changes: int


@dataclass(frozen=True)
class OversizedChange:
    """A change too large for any message: it travels by claim check (stored aside, referenced)."""

    change: Change
    payload: bytes


def _change_payload(change: Change) -> dict[str, Any]:
    return change.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


def encode_body(payload: dict[str, Any], *, compress: bool) -> str:
    raw = orjson.dumps(payload)
    if not compress:
        return raw.decode()
    # Queue bodies are text: gzip, then base64. Product text compresses to about a third.
    return _COMPRESSED_PREFIX + base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode()


class BadMessage(ValueError):
    """A queue message that is not a change message catalog-sync wrote; the message says what is wrong with it."""


def decode_body(body: str) -> dict[str, Any]:
    if body.startswith(_COMPRESSED_PREFIX):
        try:
            packed = base64.b64decode(body[len(_COMPRESSED_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise BadMessage("not a change message: marked gz: but the rest is not base64") from None
        try:
            raw = gzip.decompress(packed)
        except (OSError, EOFError, zlib.error) as exc:
            raise BadMessage(f"not a change message: marked gz: but not gzip data ({exc})") from None
    else:
        raw = body.encode()
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        shown = raw[:40].decode("utf-8", "replace")
        raise BadMessage(f"not a change message: the body is not JSON ({exc}; it begins {shown!r})") from None
    if type(payload) is not dict:
        raise BadMessage(f"not a change message: the body is a JSON {type(payload).__name__}, not an object")
    if payload.get("format") != MESSAGE_FORMAT:
        raise BadMessage(f"unknown change message format {payload.get('format')!r}")
    if type(payload.get("changes")) is not list:
        raise BadMessage("the change message has no list of changes")
    return payload


def pack_messages(
    changes: Iterable[Change],
    *,
    run_id: str,
    lane: str,
    max_bytes: int,
    compress: bool = True,
    claim: Callable[[OversizedChange], dict[str, Any]] | None = None,
    first_sequence: int = 1,
    catalog: str | None = None,
) -> Iterator[PackedMessage]:
    """Pack changes, in order, into as few messages of at most `max_bytes` as the limit allows.

    Items are gathered by their JSON size. For compressed bodies the budget follows the compression ratio
    measured on the data; a body that still comes out too large is split in two. A change that does not fit
    a message alone is handed to `claim`, which stores it aside and returns a small reference to carry
    instead; without a claim check it is refused. Messages are numbered from `first_sequence`: a caller
    that packs one run in several calls continues the numbering, so that ids never repeat within a run.
    """
    sequence = first_sequence - 1
    envelope = 200
    raw_limit = max_bytes * 3 if compress else max_bytes - envelope

    def message_id(number: int) -> str:
        return f"{run_id}-{lane}-{number:06d}"

    def body_of(items: list[dict[str, Any]], number: int = 0) -> str:
        # The id travels in the body: consumers count each message's progress once, however often it arrives
        # (a duplicate delivery, a redrive from the dead-letter queue).
        envelope: dict[str, Any] = {"format": MESSAGE_FORMAT, "run": run_id, "id": message_id(number), "changes": items}
        if catalog is not None:
            envelope["catalog"] = catalog  # consumers serve many catalogs: the message says whose changes these are
        return encode_body(envelope, compress=compress)

    def emit(items: list[dict[str, Any]], raw_size: int) -> Iterator[PackedMessage]:
        nonlocal sequence
        body = body_of(items, sequence + 1)
        if len(body.encode()) > max_bytes and len(items) > 1:
            middle = len(items) // 2
            yield from emit(items[:middle], raw_size // 2)
            yield from emit(items[middle:], raw_size - raw_size // 2)
            return
        sequence += 1
        yield PackedMessage(message_id(sequence), body, len(items))

    pending: list[dict[str, Any]] = []
    pending_size = 0
    for change in changes:
        item = _change_payload(change)
        size = len(orjson.dumps(item)) + 1
        if size > max_bytes * 20 or len(body_of([item]).encode()) > max_bytes:
            if claim is None:
                raise ValueError(f"change of {change.product_id!r} does not fit a {max_bytes:,}-byte message")
            item = {"claim": claim(OversizedChange(change, orjson.dumps(item)))}
            size = len(orjson.dumps(item)) + 1
        if pending and pending_size + size > raw_limit and compress:
            # Measure how well this data compresses before deciding that the message is full.
            ratio = max(len(body_of(pending)) / pending_size, 0.02)
            raw_limit = max(int((max_bytes - envelope) / ratio * 0.95), 1)
        if pending and pending_size + size > raw_limit:
            yield from emit(pending, pending_size)
            pending, pending_size = [], 0
        pending.append(item)
        pending_size += size
    if pending:
        yield from emit(pending, pending_size)


@dataclass(frozen=True)
class UnpackedMessage:
    catalog: str | None
    run_id: str | None
    changes: list[Change]
    message_id: str | None = None  # deterministic within its run (None: a message from before ids were sent)


def unpack_envelope(body: str, *, resolve_claim: Callable[[dict[str, Any]], bytes] | None = None) -> UnpackedMessage:
    """A message's catalog, run, changes and id."""
    payload = decode_body(body)
    catalog, run_id, message_id = payload.get("catalog"), payload.get("run"), payload.get("id")
    for name, value in (("catalog", catalog), ("run", run_id), ("id", message_id)):
        if value is not None and type(value) is not str:
            raise BadMessage(f"the change message's {name} must be a string, got {type(value).__name__}")
    return UnpackedMessage(catalog, run_id, _changes(payload, resolve_claim), message_id)


def unpack_message(body: str, *, resolve_claim: Callable[[dict[str, Any]], bytes] | None = None) -> list[Change]:
    """The changes of one message, claim checks resolved."""
    return _changes(decode_body(body), resolve_claim)


def _changes(payload: dict[str, Any], resolve_claim: Callable[[dict[str, Any]], bytes] | None) -> list[Change]:
    changes = []
    for position, item in enumerate(payload["changes"], start=1):
        try:
            if type(item) is dict and "claim" in item:
                if resolve_claim is None:
                    raise ValueError("message holds a claim check but no store to resolve it")
                changes.append(Change.model_validate_json(resolve_claim(item["claim"])))
            else:
                changes.append(Change.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'change'}: {error['msg']}"
                for error in exc.errors(include_url=False)
            )
            raise BadMessage(f"change {position} of the message is invalid: {problems}") from None
    return changes
