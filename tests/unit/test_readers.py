import gzip
import io
from pathlib import Path

import pytest

from catalog_sync.formats.catalog import iter_records
from catalog_sync.formats.records import READER_ERROR_KEY, CatalogFormatError
from tests.conftest import product, write_json, write_jsonl

RECORDS = [product("A"), product("B", price=12.5), product("C", title="Caf\u00e9")]


def read(path: Path, **kwargs):
    with path.open("rb") as raw:
        _, records = iter_records(raw, path.name, **kwargs)
        return [record for _, record in records]


@pytest.mark.parametrize("name", ["c.jsonl", "c.ndjson", "c.jsonl.gz"])
def test_json_lines(tmp_path: Path, name: str):
    assert read(write_jsonl(tmp_path / name, RECORDS)) == RECORDS


@pytest.mark.parametrize("name", ["c.json", "c.json.gz"])
def test_json_array(tmp_path: Path, name: str):
    assert read(write_json(tmp_path / name, RECORDS)) == RECORDS


@pytest.mark.parametrize("name", ["c.csv", "c.csv.gz"])
def test_csv_with_embedded_newlines_and_bom(tmp_path: Path, name: str):
    text = '\ufeffsku,title,price\nA,"two\nlines",1.5\nB,plain,2\n'
    data = text.encode()
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    rows = read(tmp_path / name, id_field="sku")
    assert rows == [
        {"sku": "A", "title": "two\nlines", "price": "1.5"},
        {"sku": "B", "title": "plain", "price": "2"},
    ]


@pytest.mark.parametrize("name", ["c.jsonl", "c.json", "c.csv", "c.jsonl.gz"])
def test_records_are_streamed_not_loaded(tmp_path: Path, name: str):
    products = [product(str(i), description="d" * 2000) for i in range(2000)]  # about 4 MB
    path = tmp_path / name
    if name == "c.json":
        write_json(path, products)
    elif name == "c.csv":
        rows = "".join(f"{p['sku']},{p['title']},{p['description']}\n" for p in products)
        path.write_text("sku,title,description\n" + rows)
    else:
        write_jsonl(path, products)
    with path.open("rb") as raw:
        _, records = iter_records(raw, path.name, id_field="sku")
        assert next(records)[1]["sku"] == "0"
        # Only a buffer's worth has been read, not the whole file.
        assert raw.tell() < path.stat().st_size / 2


def test_truncated_json_array_names_file_record_and_byte_range(tmp_path: Path):
    import re

    record = b'{"sku": "A", "title": "' + b"x" * 600 + b'"}'
    data = b"[" + b",".join([record] * 40) + b', {"sku": "B", "ti'
    path = tmp_path / "c.json"
    path.write_bytes(data)
    with pytest.raises(CatalogFormatError, match=r"c\.json, record 41, between bytes") as caught:
        read(path)
    start, end = (
        int(n.replace(",", "")) for n in re.findall(r"[\d,]+", str(caught.value).split("between bytes")[1])[:2]
    )
    assert start < len(data) <= end
    assert end - start <= 8 * 1024


def test_trailing_garbage_after_array(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_bytes(b'[{"sku": "A"}] garbage')
    with pytest.raises(CatalogFormatError, match="invalid JSON"):
        read(path)


def test_bad_json_line_names_the_line(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"sku": "A"}\n{"sku": "B",\n')
    with pytest.raises(CatalogFormatError, match=r"c\.jsonl, line 2: invalid JSON"):
        read(path)


def test_invalid_utf8_is_reported(tmp_path: Path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"sku": "A"}\n{"sku": "\xff\xfe"}\n')
    with pytest.raises(CatalogFormatError, match="line 2"):
        read(path)
    csv_path = tmp_path / "c.csv"
    csv_path.write_bytes(b"sku,title\nA,caf\xe9\n")
    with pytest.raises(CatalogFormatError, match=r"not UTF-8 \(byte 0xe9\)"):
        read(csv_path, id_field="sku")
    json_path = tmp_path / "c.json"
    json_path.write_bytes(b'[{"sku": "\xff"}]')
    with pytest.raises(CatalogFormatError, match=r"c\.json, record 1"):
        read(json_path)


def test_non_object_items_are_rejected(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_bytes(b'[{"sku": "A"}, 3]')
    with pytest.raises(CatalogFormatError, match="record 2: expected a JSON object"):
        read(path)


def test_content_must_match_extension(tmp_path: Path):
    path = tmp_path / "c.json"
    path.write_bytes(b'{"sku": "A"}\n')
    with pytest.raises(CatalogFormatError, match="looks like JSON Lines"):
        read(path)
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(b'{"sku": "A"}\n')
    with pytest.raises(CatalogFormatError, match="not gzip"):
        read(gz)
    plain = tmp_path / "c.jsonl"
    plain.write_bytes(gzip.compress(b'{"sku": "A"}\n'))
    with pytest.raises(CatalogFormatError, match=r"not named \.gz"):
        read(plain)


def test_empty_file_and_unknown_extension(tmp_path: Path):
    empty = tmp_path / "c.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(CatalogFormatError, match="empty"):
        read(empty)
    other = tmp_path / "c.yaml"
    other.write_bytes(b"sku: A\n")
    with pytest.raises(CatalogFormatError, match="unknown catalog format"):
        read(other)


def test_gzip_bomb_is_refused(tmp_path: Path):
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"sku": "A"}\n' + b" " * 5_000_000))
    with path.open("rb") as raw, pytest.raises(CatalogFormatError, match="decompresses to more than"):
        _, records = iter_records(raw, path.name, max_decompressed_bytes=1_000_000)
        list(records)


def test_corrupt_gzip(tmp_path: Path):
    data = gzip.compress(b'{"sku": "A"}\n' * 1000)
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(data[:40] + b"\x00" * 20 + data[60:])
    with pytest.raises(CatalogFormatError, match="gzip"):
        read(path)


def test_csv_missing_id_column_hints_at_delimiter(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"sku;title\nA;x\n")
    with pytest.raises(CatalogFormatError, match="';'-delimited"):
        read(path, id_field="sku")


def test_csv_row_with_wrong_width_is_kept_for_quarantine(tmp_path: Path):
    path = tmp_path / "c.csv"
    path.write_bytes(b"sku,title\nA,x,extra\nB\n")
    rows = read(path, id_field="sku")
    assert "row has 3 fields" in rows[0][READER_ERROR_KEY]
    assert "row has 1 fields" in rows[1][READER_ERROR_KEY]


def test_reader_accepts_any_binary_stream():
    raw = io.BytesIO(b'{"sku": "A"}\n')
    _, records = iter_records(raw, "x.jsonl")
    assert [r for _, r in records] == [{"sku": "A"}]
