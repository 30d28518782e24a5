"""A local HTTP double of the OpenAI embeddings endpoint, for the real `openai` SDK to talk to.

It speaks the wire protocol the SDK uses (POST /v1/embeddings, JSON body, base64 or float vectors), records
every request, and can be told to answer the next requests with errors (429, 500) to exercise retries. A fault
counts in `faults_delivered` once its answer was written to the client: one still queued was never injected.
"""

from __future__ import annotations

import base64
import math
import struct
import threading
import zlib
from collections import Counter, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


def fake_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic vector per text, of unit length as OpenAI's embeddings are (at any `dimensions`)."""
    seed = zlib.crc32(text.encode())
    raw = [((seed >> (i % 24)) % 97) / 97.0 for i in range(dimensions)]
    norm = math.sqrt(sum(value * value for value in raw))
    return [value / norm for value in raw] if norm else raw


class OpenAIDouble:
    def __init__(self, *, max_inputs: int = 2048) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures: deque[int] = deque()
        self.faults_delivered: Counter[int] = Counter()  # status -> faults answered
        self._lock = threading.Lock()
        self.max_inputs = max_inputs
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                body = orjson.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/embeddings":
                    self._reply(404, {"error": {"message": "not found"}})
                    return
                with double._lock:
                    double.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    status = double.failures.popleft() if double.failures else None
                if status is not None:
                    self._reply(
                        status, {"error": {"message": f"injected {status}", "type": "test"}}, {"retry-after-ms": "10"}
                    )
                    with double._lock:
                        double.faults_delivered[status] += 1
                    return
                inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
                if len(inputs) > double.max_inputs:
                    self._reply(400, {"error": {"message": f"too many inputs: {len(inputs)}"}})
                    return
                dimensions = body.get("dimensions", 8)
                data = []
                for index, text in enumerate(inputs):
                    vector = fake_vector(text, dimensions)
                    if body.get("encoding_format") == "base64":
                        encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
                    else:
                        encoded = vector
                    data.append({"object": "embedding", "index": index, "embedding": encoded})
                tokens = sum(len(text.split()) for text in inputs)
                self._reply(
                    200,
                    {
                        "object": "list",
                        "model": body["model"],
                        "data": data,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                    },
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> OpenAIDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
