"""S3: catalog objects read at a version (the drop store), the claim-check store for changes too large for a
message, the change archive with its checkpoints, and quarantined records."""

from __future__ import annotations

import gzip
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson
from botocore.exceptions import ClientError

from catalog_sync.adapters.aws.bucket_layout import CLAIMS_PREFIX, QUARANTINE_PREFIX, RUNS_PREFIX
from catalog_sync.logic.drops import DropClaim, newest_listed
from catalog_sync.logic.packing import BadMessage, OversizedChange
from catalog_sync.models.changes import Change, QuarantinedRecord
from catalog_sync.models.config import ConfigError

# S3's answers for an object that is not there (or not at that version), and for one that may not be read.
_MISSING = {"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "404"}
_DENIED = {"AccessDenied", "403"}


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3CatalogSource:
    """A catalog object in S3, read as a stream; pinned to a version id when one is given (rollbacks)."""

    def __init__(self, s3: Any, *, bucket: str, key: str, version_id: str | None = None) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self.version_id = version_id
        # The name ends with the key's extension, which says the format.
        self.name = f"s3://{bucket}/{key}"

    def open(self) -> IO[bytes]:
        """The object's body. An object that cannot be read raises OSError (the sync reports it as bad input)."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            kwargs["VersionId"] = self.version_id
        try:
            response = self._s3.get_object(**kwargs)
        except ClientError as exc:
            raise self._unreadable(exc) from None
        if self.version_id is None:
            self.version_id = response.get("VersionId")
        body: IO[bytes] = response["Body"]
        return body

    def _unreadable(self, exc: ClientError) -> OSError:
        # An event can name an object deleted since, a version id that is not one, or another bucket.
        code = _error_code(exc)
        version = f" at version {self.version_id}" if self.version_id else ""
        if code in _MISSING:
            return FileNotFoundError(f"no such object{version} ({code})")
        if code in _DENIED:
            return PermissionError(f"access denied{version} ({code})")
        message = exc.response.get("Error", {}).get("Message", "")
        return OSError(f"S3 refused to read it{version} ({code}: {message})")


class S3DropStore:
    """The bucket's catalog drops (`<catalogs_prefix><catalog>/...`) and push objects; `bucket` is the function's
    own, used wherever a request names none."""

    def __init__(self, s3: Any, *, bucket: str, catalogs_prefix: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.catalogs_prefix = catalogs_prefix

    def source(self, key: str, *, bucket: str | None = None, version_id: str | None = None) -> S3CatalogSource:
        return S3CatalogSource(self._s3, bucket=bucket or self.bucket, key=key, version_id=version_id)

    def look_up(self, key: str, *, bucket: str | None = None, version_id: str | None = None) -> DropClaim | None:
        head: dict[str, Any] = {"Bucket": bucket or self.bucket, "Key": key}
        if version_id:
            head["VersionId"] = version_id
        try:
            response = self._s3.head_object(**head)
        except ClientError:
            return None
        return DropClaim(
            key=key, modified=response["LastModified"].timestamp(), version_id=version_id or response.get("VersionId")
        )

    def newest(self, catalog: str) -> str:
        """The newest object under the catalog's prefix, by the order claims follow (catalog_sync.logic.drops)."""
        prefix = f"{self.catalogs_prefix}{catalog}/"
        listed = [
            (obj["Key"], obj["LastModified"].timestamp())
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        newest = newest_listed(listed)
        if newest is None:
            raise ConfigError(f"no catalog object under s3://{self.bucket}/{prefix}")
        return newest


class S3ClaimStore:
    """Holds the changes that do not fit a queue message; the message carries {"bucket", "key"} instead."""

    def __init__(self, s3: Any, *, bucket: str, prefix: str = CLAIMS_PREFIX) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def put(self, run_id: str, oversized: OversizedChange) -> dict[str, Any]:
        change = oversized.change
        key = f"{self.prefix}{run_id}/{change.version}/{change.product_id}.json"
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=oversized.payload, ContentType="application/json")
        return {"bucket": self.bucket, "key": key}

    def get(self, reference: dict[str, Any]) -> bytes:
        """A claimed change. Only this store's own claims are read: a message cannot point anywhere else."""
        bucket, key = (reference.get(name) if isinstance(reference, dict) else None for name in ("bucket", "key"))
        if not isinstance(bucket, str) or not isinstance(key, str):
            raise BadMessage(f"a claim check must name a bucket and a key, got {reference!r:.200}")
        if bucket != self.bucket or not key.startswith(self.prefix):
            raise BadMessage(f"claim check s3://{bucket}/{key} is not in s3://{self.bucket}/{self.prefix}")
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                raise LookupError(f"claim check s3://{bucket}/{key} is missing ({_error_code(exc)})") from None
            raise
        data: bytes = response["Body"].read()
        return data


class S3ChangeArchive:
    """A run's changes as gzipped JSON Lines in the bucket, read back as a stream when a dispatch resumes."""

    def __init__(self, s3: Any, *, bucket: str, prefix: str = RUNS_PREFIX) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def put(self, run_id: str, changes: Iterable[Change]) -> str:
        key = f"{self.prefix}{run_id}/changes.jsonl.gz"
        with tempfile.TemporaryFile() as spool:
            with gzip.GzipFile(fileobj=spool, mode="wb", mtime=0) as packed:
                for change in changes:
                    packed.write(change.model_dump_json().encode() + b"\n")
            spool.seek(0)
            self._s3.upload_fileobj(spool, self.bucket, key)
        return key

    def read(self, key: str) -> Iterator[Change]:
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        with gzip.GzipFile(fileobj=body, mode="rb") as packed:
            for line in packed:
                yield Change.model_validate_json(line)

    def save_checkpoint(self, run_id: str, checkpoint: bytes) -> None:
        self._s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}{run_id}/checkpoint.json", Body=checkpoint)

    def has_checkpoint(self, run_id: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=f"{self.prefix}{run_id}/checkpoint.json")
        except ClientError as exc:
            if _error_code(exc) in _MISSING:
                return False
            raise
        return True

    def load_checkpoint(self, run_id: str) -> bytes:
        data: bytes = self._s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}{run_id}/checkpoint.json")[
            "Body"
        ].read()
        return data


class S3RunArtifacts:
    """Quarantined records of a run, as JSON Lines in the bucket. The run's counts are in the state table; the
    changes themselves are in the change archive and the structured logs, so there is no separate change log."""

    def __init__(self, s3: Any, *, bucket: str, catalog: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.catalog = catalog

    def write_quarantine(self, run_id: str, records: Iterable[QuarantinedRecord]) -> str:
        body = b"".join(
            orjson.dumps({"run": run_id, **QuarantinedRecord.model_validate(r).model_dump()}, default=str) + b"\n"
            for r in records
        )
        key = f"{QUARANTINE_PREFIX}{self.catalog}/{run_id}.jsonl"
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        return f"s3://{self.bucket}/{key}"

    def append_change_log(self, run_id: str, changes: Iterable[Change]) -> None:
        return None  # see the class's docstring
