"""Sign and send one request to the catalog-sync webhook (scheme v2), with the Python standard library alone.

    export CATALOG_SYNC_WEBHOOK_KEY=...          # the value of the WebhookSigningKey secret
    python webhook_client.py GET https://<api>/health
    python webhook_client.py GET "https://<api>/catalogs/shop/runs?limit=5"
    python webhook_client.py POST https://<api>/catalogs/shop/sync --data '{"mode": "full"}'
    python webhook_client.py POST https://<api>/catalogs/shop/changes --data-file changes.json \\
        --header "Idempotency-Key: push-0001"

Prints the status and the answer; exits 0 on a 2xx answer, 1 otherwise. Copy this file into any project: it needs
nothing but Python 3.9 or later. The signature covers the method, the path, the query string, the timestamp,
the nonce and the body, exactly as sent (the README's "The webhook" section gives the canonical form).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import unquote, urlsplit

KEY_VARIABLE = "CATALOG_SYNC_WEBHOOK_KEY"


def signature_headers(
    key: bytes, method: str, path: str, query: str, body: bytes, timestamp: int, nonce: str
) -> dict[str, str]:
    """The three headers of a v2-signed request. `path` as sent (it is signed decoded, as API Gateway's HTTP API
    hands it on); `query` exactly as sent, without its "?"; `nonce` new for every request."""
    canonical = "\n".join(
        [
            "catalog-sync-v2",
            method.upper(),
            unquote(path),
            query,
            str(timestamp),
            nonce,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    digest = hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
    return {
        "X-Catalog-Sync-Timestamp": str(timestamp),
        "X-Catalog-Sync-Nonce": nonce,
        "X-Catalog-Sync-Signature": f"v2={digest}",
    }


def send(
    key: bytes, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, bytes]:
    """Sign and send the request; the answer's status and body (an error status is an answer too)."""
    parts = urlsplit(url)
    sent = dict(headers or {})
    if body and not any(name.lower() == "content-type" for name in sent):
        sent["Content-Type"] = "application/json"
    nonce = secrets.token_urlsafe(24)  # 32 characters; never reused
    sent.update(signature_headers(key, method, parts.path or "/", parts.query, body, int(time.time()), nonce))
    request = urllib.request.Request(url, data=body or None, method=method.upper(), headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # the URL is the user's
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", help="GET, POST or PUT")
    parser.add_argument("url", help="the route's full URL, with its query string if any")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--data", help="the body, as text (JSON)")
    data.add_argument("--data-file", help="a file whose bytes are the body")
    parser.add_argument("--header", action="append", default=[], help='another header, "Name: value"')
    parser.add_argument("--key-env", default=KEY_VARIABLE, help=f"the variable holding the key ({KEY_VARIABLE})")
    args = parser.parse_args(argv)
    key = os.environ.get(args.key_env, "").encode()
    if not key:
        print(f"set {args.key_env} to the webhook's signing key", file=sys.stderr)
        return 2
    if args.data_file:
        with open(args.data_file, "rb") as file:
            body = file.read()
    else:
        body = (args.data or "").encode()
    headers = {}
    for header in args.header:
        name, separator, value = header.partition(":")
        if not separator:
            parser.error(f"--header {header!r}: expected 'Name: value'")
        headers[name.strip()] = value.strip()
    status, answer = send(key, args.method, args.url, body, headers)
    print(status)
    print(answer.decode(errors="replace"))
    return 0 if 200 <= status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
