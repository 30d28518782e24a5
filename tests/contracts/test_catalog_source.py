"""The CatalogSource port's contract, run on every adapter: a local file, and an S3 object under moto. A new
source joins with one fixture param.

A source gives a full snapshot: `open` yields the catalog's bytes as they were written (the readers tell the
format from `name`), again on every open while the data is unchanged; a source that cannot be read raises
OSError (FileNotFoundError when it is not there). Neither of these offers changes since a cursor
(IncrementalCatalogSource): deletions come from a snapshot only.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.s3 import S3CatalogSource
from catalog_sync.adapters.local.files import FileCatalogSource
from catalog_sync.formats.catalog import iter_records
from catalog_sync.ports import CatalogSource, IncrementalCatalogSource
from tests.aws.conftest import REGION

# Stores `data` under a name ending in `filename` and gives the source that reads it (data None: stores nothing).
MakeSource = Callable[[str, bytes | None], CatalogSource]

RECORDS = b'{"sku": "A", "title": "First"}\n{"sku": "B", "title": "Zw\xc3\xb6lf"}\n'


@pytest.fixture(params=["file", "s3"])
def make_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeSource]:
    if request.param == "file":

        def from_file(filename: str, data: bytes | None) -> CatalogSource:
            path = tmp_path / filename
            if data is not None:
                path.write_bytes(data)
            return FileCatalogSource(path)

        yield from_file
    else:
        request.getfixturevalue("aws_credentials")
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION)
            s3.create_bucket(Bucket="catalogs")

            def from_s3(filename: str, data: bytes | None) -> CatalogSource:
                key = f"catalogs/shop/{filename}"
                if data is not None:
                    s3.put_object(Bucket="catalogs", Key=key, Body=data)
                return S3CatalogSource(s3, bucket="catalogs", key=key)

            yield from_s3


def read(source: CatalogSource) -> bytes:
    with source.open() as raw:
        return raw.read()


def test_a_snapshot_is_the_bytes_as_written(make_source: MakeSource):
    source = make_source("shop.jsonl", RECORDS)
    assert read(source) == RECORDS
    assert read(source) == RECORDS  # again, the same snapshot


@pytest.mark.parametrize("filename", ["shop.jsonl", "shop.jsonl.gz"])
def test_the_readers_tell_the_format_from_the_name(make_source: MakeSource, filename: str):
    data = gzip.compress(RECORDS) if filename.endswith(".gz") else RECORDS
    source = make_source(filename, data)
    assert source.name.endswith(filename)
    with source.open() as raw:
        _, records = iter_records(raw, source.name)
        assert [record["sku"] for _, record in records] == ["A", "B"]


def test_a_source_that_is_not_there_raises_file_not_found(make_source: MakeSource):
    with pytest.raises(FileNotFoundError):
        read(make_source("missing.jsonl", None))


def test_these_sources_give_snapshots_only(make_source: MakeSource):
    assert not isinstance(make_source("shop.jsonl", RECORDS), IncrementalCatalogSource)
