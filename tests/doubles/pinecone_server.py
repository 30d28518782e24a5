"""A local HTTP double of a Pinecone serverless index's data plane, for the real `pinecone` SDK to talk to.

It keeps vectors per namespace in memory, speaks the REST shapes the SDK sends (upsert, update, delete,
fetch, list, query, describe_index_stats), enforces the documented request limits (1,000 vectors and 2 MB
per upsert, 1,000 ids per delete, 40 KB of metadata per vector, metadata values that are strings, numbers,
booleans or lists of strings, vector ids of 1 to 512 ASCII characters without NUL) by answering 400 for the
whole request as the service does, records every request, and can be told to
fail the next requests (429, 5xx) to exercise retries. A fault counts in `faults_delivered` once its
answer was written to the client: one still queued was never injected.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import orjson

MAX_UPSERT_VECTORS = 1_000
MAX_REQUEST_BYTES = 2_000_000
MAX_DELETE_IDS = 1_000
MAX_METADATA_BYTES = 40 * 1024
MAX_ID_CHARS = 512


def bad_id(vector_id: object) -> str | None:
    """Why Pinecone refuses a vector id, or None."""
    if not isinstance(vector_id, str) or not vector_id:
        return "Vector ID must be a non-empty string"
    if len(vector_id) > MAX_ID_CHARS:
        return f"Vector ID must be at most {MAX_ID_CHARS} characters, got {len(vector_id)}"
    if not vector_id.isascii() or "\x00" in vector_id:
        return f"Vector ID must be ASCII without NUL, got {vector_id!r}"
    return None


def bad_metadata(metadata: dict[str, Any]) -> str | None:
    """Why Pinecone refuses metadata values (a string, number, boolean or list of strings each), or None."""
    for key, value in metadata.items():
        if isinstance(value, list):
            if all(isinstance(item, str) for item in value):
                continue
        elif value is None or isinstance(value, str | int | float | bool):
            continue
        return f"Metadata value for field {key!r} must be a string, number, boolean or list of strings"
    return None


class PineconeDouble:
    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.namespaces: dict[str, dict[str, dict[str, Any]]] = {}
        self.requests: list[dict[str, Any]] = []
        self.failures: deque[int] = deque()
        self.faults_delivered: Counter[int] = Counter()  # status -> faults answered
        self.lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, payload: dict[str, Any]) -> None:
                body = orjson.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = orjson.loads(raw) if raw else {}
                query = parse_qs(url.query)
                with double.lock:
                    double.requests.append(
                        {
                            "method": method,
                            "path": url.path,
                            "body": body,
                            "query": query,
                            "bytes": len(raw),
                            "at": time.monotonic(),
                        }
                    )
                    if double.failures:
                        status = double.failures.popleft()
                        self._reply(status, {"code": status, "message": f"injected {status}"})
                        double.faults_delivered[status] += 1
                        return
                    try:
                        status, payload = double.route(method, url.path, body, query, len(raw))
                    except KeyError as exc:
                        status, payload = 400, {"code": 3, "message": f"missing {exc}"}
                self._reply(status, payload)

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> PineconeDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def vectors(self, namespace: str) -> dict[str, dict[str, Any]]:
        return self.namespaces.setdefault(namespace, {})

    def route(
        self, method: str, path: str, body: dict[str, Any], query: dict[str, list[str]], size: int
    ) -> tuple[int, dict[str, Any]]:
        if path == "/vectors/upsert":
            vectors = body["vectors"]
            if len(vectors) > MAX_UPSERT_VECTORS or size > MAX_REQUEST_BYTES:
                return 400, {"code": 3, "message": f"request too large: {len(vectors)} vectors, {size} bytes"}
            for vector in vectors:
                if (problem := bad_id(vector["id"])) is not None:
                    return 400, {"code": 3, "message": problem}
                if len(vector["values"]) != self.dimension:
                    return 400, {"code": 3, "message": "dimension mismatch"}
                metadata = vector.get("metadata") or {}
                if (problem := bad_metadata(metadata)) is not None:
                    return 400, {"code": 3, "message": problem}
                if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
                    return 400, {"code": 3, "message": "metadata too large"}
            store = self.vectors(body.get("namespace", ""))
            for vector in vectors:
                store[vector["id"]] = {
                    "id": vector["id"],
                    "values": vector["values"],
                    "metadata": vector.get("metadata") or {},
                }
            return 200, {"upsertedCount": len(vectors)}
        if path == "/vectors/update":
            if (problem := bad_id(body["id"])) is not None:
                return 400, {"code": 3, "message": problem}
            store = self.vectors(body.get("namespace", ""))
            record = store.get(body["id"])
            if record is None:
                return 200, {"matchedRecords": 0}
            if "values" in body:
                record["values"] = body["values"]
            if (problem := bad_metadata(body.get("setMetadata") or {})) is not None:
                return 400, {"code": 3, "message": problem}
            merged = {**record["metadata"], **(body.get("setMetadata") or {})}
            if len(orjson.dumps(merged)) > MAX_METADATA_BYTES:
                return 400, {"code": 3, "message": "metadata too large"}
            record["metadata"] = merged
            return 200, {"matchedRecords": 1}
        if path == "/vectors/delete":
            store = self.vectors(body.get("namespace", ""))
            if body.get("deleteAll"):
                store.clear()
                return 200, {}
            ids = body.get("ids") or []
            if len(ids) > MAX_DELETE_IDS:
                return 400, {"code": 3, "message": f"too many ids: {len(ids)}"}
            for vector_id in ids:
                if (problem := bad_id(vector_id)) is not None:
                    return 400, {"code": 3, "message": problem}
            for vector_id in ids:
                store.pop(vector_id, None)
            return 200, {}
        if path == "/vectors/fetch":
            namespace = query.get("namespace", [""])[0]
            store = self.vectors(namespace)
            for vector_id in query.get("ids", []):
                if (problem := bad_id(vector_id)) is not None:
                    return 400, {"code": 3, "message": problem}
            found = {i: store[i] for i in query.get("ids", []) if i in store}
            return 200, {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}
        if path == "/vectors/list":
            namespace = query.get("namespace", [""])[0]
            limit = int(query.get("limit", ["100"])[0])
            start = int(query.get("paginationToken", ["0"])[0])
            ids = sorted(self.vectors(namespace))
            page = ids[start : start + limit]
            payload: dict[str, Any] = {
                "vectors": [{"id": i} for i in page],
                "namespace": namespace,
                "usage": {"readUnits": 1},
            }
            if start + limit < len(ids):
                payload["pagination"] = {"next": str(start + limit)}
            return 200, payload
        if path == "/query":
            store = self.vectors(body.get("namespace", ""))
            candidates = [v for v in store.values() if _matches(v["metadata"], body.get("filter") or {})]
            target = np.asarray(body["vector"], dtype=np.float32)
            scored = sorted(
                ((float(np.dot(target, np.asarray(v["values"], dtype=np.float32))), v) for v in candidates),
                key=lambda pair: -pair[0],
            )[: body["topK"]]
            matches = [
                {
                    "id": v["id"],
                    "score": s,
                    "values": [],
                    **({"metadata": v["metadata"]} if body.get("includeMetadata") else {}),
                }
                for s, v in scored
            ]
            return 200, {"matches": matches, "namespace": body.get("namespace", ""), "usage": {"readUnits": 5}}
        if path == "/describe_index_stats":
            namespaces = {name: {"vectorCount": len(store)} for name, store in self.namespaces.items()}
            total = sum(len(store) for store in self.namespaces.values())
            return 200, {
                "namespaces": namespaces,
                "dimension": self.dimension,
                "indexFullness": 0.0,
                "totalVectorCount": total,
                "metric": "cosine",
                "vectorType": "dense",
            }
        return 404, {"code": 5, "message": f"no route {method} {path}"}


def _matches(metadata: dict[str, Any], query_filter: dict[str, Any]) -> bool:
    for field, condition in query_filter.items():
        if field == "$and":
            if not all(_matches(metadata, part) for part in condition):
                return False
            continue
        expected = condition.get("$eq") if isinstance(condition, dict) else condition
        value = metadata.get(field)
        if isinstance(value, list):
            if expected not in value:
                return False
        elif value != expected:
            return False
    return True
