"""The feed readers: JSON arrays wrapped in an object ([source] records), XML feeds (RSS 2.0, Atom, other XML) and
tab-separated files; what they make of a record, where they say an error is, and what they refuse."""

from __future__ import annotations

import gzip
import io
import re
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from catalog_sync.formats.catalog import open_catalog
from catalog_sync.formats.json_records import MAX_NESTING
from catalog_sync.formats.records import CatalogFormatError

G = 'xmlns:g="http://base.google.com/ns/1.0"'


def read(data: bytes, name: str, **options: Any) -> list[dict[str, Any]]:
    return [record for _, record in open_catalog(io.BytesIO(data), name, **options).records()]


def positions(data: bytes, name: str, **options: Any) -> list[int]:
    return [position for position, _ in open_catalog(io.BytesIO(data), name, **options).records()]


def rss(*items: str, channel: str = "<title>Shop</title>") -> bytes:
    body = "".join(f"<item>{item}</item>" for item in items)
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return f'{declaration}<rss version="2.0" {G}><channel>{channel}{body}</channel></rss>'.encode()


# ---------------------------------------------------------------- JSON arrays wrapped in an object


def test_the_array_at_a_dotted_path_is_read_and_the_rest_of_the_document_ignored():
    document = {"meta": {"page": 1, "tags": ["a"]}, "data": {"items": [{"id": "1"}, {"id": "2"}]}, "total": 194}
    assert read(orjson.dumps(document), "c.json", records="data.items") == [{"id": "1"}, {"id": "2"}]
    assert positions(orjson.dumps(document), "c.json.gz".removesuffix(".gz"), records="data.items") == [1, 2]
    gzipped = gzip.compress(orjson.dumps({"products": [{"id": "1"}]}))
    assert read(gzipped, "c.json.gz", records="products") == [{"id": "1"}]


def test_an_object_read_without_records_names_the_arrays_it_holds():
    with pytest.raises(CatalogFormatError) as raised:
        read(b'{"products": [{"id": 1}], "total": 194}', "c.json")
    assert str(raised.value) == (
        'c.json, byte 0: the file holds an object, not an array; set [source] records = "products" '
        "(arrays found: products)"
    )
    # Several arrays, nested ones by their path; arrays inside arrays are not candidates.
    document = {"data": {"items": [{"tags": ["x"]}]}, "facets": [[1]], "count": 3}
    with pytest.raises(
        CatalogFormatError, match=r"to the path of the records' array \(arrays found: data\.items, facets\)$"
    ):
        read(orjson.dumps(document), "c.json")
    # Past ten, the rest are left out.
    many = {f"k{i}": [] for i in range(12)}
    with pytest.raises(CatalogFormatError, match=r"arrays found: k0, k1, .*, k9, \.\.\.\)$"):
        read(orjson.dumps(many), "c.json")


def test_an_object_without_arrays_or_several_objects_point_at_json_lines():
    with pytest.raises(CatalogFormatError, match=r"one object with no array in it \(it looks like JSON Lines"):
        read(b'{"id": "1"}', "c.json")
    with pytest.raises(CatalogFormatError, match=r"c\.json, byte 0: .* \(it looks like JSON Lines: name it \.jsonl\)$"):
        read(b'{"id": "1", "tags": ["a"]}\n{"id": "2"}\n', "c.json")
    with pytest.raises(CatalogFormatError, match=r"c\.json, between bytes 0 and 20: invalid JSON"):
        read(b'{"products": [{"id":', "c.json")


def test_a_records_path_that_is_missing_or_not_an_array_is_refused_clearly():
    with pytest.raises(CatalogFormatError) as raised:
        read(b'{"data": {"products": [{"id": 1}]}, "total": 1}', "c.json", records="products")
    assert str(raised.value) == (
        'c.json: [source] records = "products": the document has no such key (arrays found: data.products)'
    )
    for value, kind in [(b'{"id": 1}', "an object"), (b"3", "a number"), (b'"x"', "a string"), (b"null", "null")]:
        with pytest.raises(CatalogFormatError, match=f'records = "data.items" names {kind}, not an array$'):
            read(b'{"data": {"items": ' + value + b"}}", "c.json", records="data.items")
    # A plain array is its records whatever the setting says (a push that only deletes is "[]").
    assert read(b'[{"id": 1}]', "c.json", records="products") == [{"id": 1}]
    assert read(b"[]", "c.json", records="data.items") == []


@pytest.mark.parametrize("records", ["data..items", ".products", "products.", " products", "data. items"])
def test_a_records_setting_that_is_no_dotted_path_is_a_config_error(records: str):
    from catalog_sync.models.mapping import SourceSettings

    with pytest.raises(ValueError, match=re.escape('must be a dotted path of names, like "products" or "data.items"')):
        SourceSettings(records=records)
    assert SourceSettings(records="data.items").records == "data.items"


def test_wrapped_records_have_the_array_readers_errors_and_limits():
    # A long preamble is no record: only what a record's parse holds is bounded.
    head = b'{"meta": ' + orjson.dumps({f"k{i}": i for i in range(3_000)}) + b', "products": ['
    assert len(head) > 20_000
    with pytest.raises(CatalogFormatError, match=r"c\.json, record 2: expected a JSON object, got int"):
        read(head + b'{"id": 1}, 5]}', "c.json", records="products", max_record_bytes=1_000)
    with pytest.raises(
        CatalogFormatError, match=r"c\.json, record 2, from byte [\d,]+: the record is larger than 1,000"
    ):
        read(
            head + b'{"id": 1}, {"id": 2, "d": "' + b"x" * 50_000 + b'"}]}',
            "c.json",
            records="products",
            max_record_bytes=1_000,
        )
    with pytest.raises(
        CatalogFormatError, match=r"c\.json, record 2, between bytes .*: invalid JSON: .*NaN and Infinity"
    ):
        read(b'{"products": [{"id": 1}, {"id": 2, "p": NaN}]}', "c.json", records="products")
    deep = b'{"id": 2, "x": ' + b"[" * MAX_NESTING + b"]" * MAX_NESTING + b"}"
    with pytest.raises(CatalogFormatError, match=f"record 2: the record is nested more than {MAX_NESTING} levels"):
        read(b'{"products": [{"id": 1}, ' + deep + b"]}", "c.json", records="products")
    with pytest.raises(CatalogFormatError, match=r"invalid JSON: parse error: trailing garbage"):
        read(b'{"products": [{"id": 1}]} <html>', "c.json", records="products")


def _peak_memory(read_all: Any) -> int:
    tracemalloc.start()
    try:
        read_all()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _count(data: bytes, name: str, **options: Any) -> int:
    return sum(1 for _ in open_catalog(io.BytesIO(data), name, **options).records())


@pytest.mark.parametrize("fmt", ["wrapped-json", "xml"])
def test_memory_does_not_grow_with_the_feed(fmt: str):
    def feed(n: int) -> bytes:
        if fmt == "xml":
            return rss(*(f"<g:id>{i}</g:id><title>Product {i}</title><g:price>1.00 USD</g:price>" for i in range(n)))
        return orjson.dumps({"products": [{"id": str(i), "title": f"Product {i}"} for i in range(n)], "total": n})

    small, large = feed(2_000), feed(40_000)
    name, options = ("c.xml", {}) if fmt == "xml" else ("c.json", {"records": "products"})
    assert _count(large, name, **options) == 40_000
    peak_small = _peak_memory(lambda: _count(small, name, **options))
    peak_large = _peak_memory(lambda: _count(large, name, **options))
    assert peak_large < 2 * peak_small + 256 * 1024, (peak_small, peak_large)  # 20 times the records


# ---------------------------------------------------------------- XML: how an item becomes a record


def test_a_merchant_item_becomes_a_record_by_googles_attribute_names():
    item = (
        "<g:id> A1 </g:id><title>Mug</title><g:title>Stoneware mug</g:title>"
        "<description><![CDATA[ <p>Big &amp; blue</p> ]]></description>"
        "<g:price>15.00 USD</g:price><g:availability>in stock</g:availability>"
        "<g:additional_image_link>https://x/1.jpg</g:additional_image_link>"
        "<g:shipping><g:country>US</g:country><g:service>Standard</g:service><g:price>4.95 USD</g:price></g:shipping>"
        "<g:shipping><g:country>CA</g:country><g:price>9.95 USD</g:price></g:shipping>"
        "<g:color>red</g:color><g:color>blue</g:color><g:size></g:size>"
    )
    assert read(rss(item), "c.xml") == [
        {
            "id": "A1",
            "title": "Stoneware mug",  # the g: element wins over RSS's own
            "description": "<p>Big &amp; blue</p>",  # CDATA is text, kept as written
            "price": "15.00 USD",
            "availability": "in stock",
            "additional_image_link": ["https://x/1.jpg"],  # Google's repeatable attributes are always lists
            "shipping": [
                {"country": "US", "service": "Standard", "price": "4.95 USD"},
                {"country": "CA", "price": "9.95 USD"},
            ],
            "color": ["red", "blue"],  # any repeated element is a list
            "size": "",
        }
    ]


def test_the_channel_and_other_elements_outside_items_are_not_records():
    channel = "<title>Shop</title><link>https://x</link><image><url>https://x/logo.png</url></image>"
    assert read(rss("<g:id>1</g:id>", "<g:id>2</g:id>", channel=channel), "c.xml") == [{"id": "1"}, {"id": "2"}]
    assert positions(rss("<g:id>1</g:id>", "<g:id>2</g:id>"), "c.xml") == [1, 2]


def test_an_atom_feed_reads_its_entries_with_link_href_and_g_id_over_atom_id():
    feed = (
        f'<feed xmlns="http://www.w3.org/2005/Atom" {G}><title>Shop</title><updated>2026-01-01T00:00:00Z</updated>'
        '<entry><id>urn:uuid:1</id><g:id>TV_1</g:id><title type="text">LED TV</title>'
        '<link href="https://x/tv" rel="alternate"/><g:price>159.00 USD</g:price></entry></feed>'
    ).encode()
    assert read(feed, "c.xml") == [{"id": "TV_1", "title": "LED TV", "link": "https://x/tv", "price": "159.00 USD"}]


def test_other_xml_is_read_at_the_records_path_with_the_record_elements_attributes():
    doc = (
        b'<catalog><meta><n>2</n></meta><product sku="p1" status="x"><title>Cup</title><status>live</status></product>'
    )
    doc += b'<product sku="p2"><title>Bowl</title><related><product sku="p1"/></related></product></catalog>'
    assert read(doc, "c.xml", records="catalog.product") == [
        {"sku": "p1", "status": "live", "title": "Cup"},  # a child element wins over an attribute
        {"sku": "p2", "title": "Bowl", "related": {"product": ""}},  # a product inside a record is its field
    ]
    with pytest.raises(CatalogFormatError) as raised:
        read(doc, "c.xml")
    assert str(raised.value) == (
        "c.xml: the XML root is <catalog>, not an RSS 2.0 <rss> or Atom <feed> feed: set [source] records to the "
        'path of the record elements, e.g. records = "catalog.meta"'
    )
    with pytest.raises(CatalogFormatError, match=r'records = "shop\.product", but the XML root is <catalog>$'):
        read(doc, "c.xml", records="shop.product")
    with pytest.raises(CatalogFormatError, match=r"no <catalog><items> element, so no <product> records$"):
        read(doc, "c.xml", records="catalog.items.product")


def test_a_channel_without_items_is_an_empty_catalog_but_a_feed_without_a_channel_is_refused():
    assert read(rss(), "c.xml") == []  # like a CSV header without rows: the guard decides
    with pytest.raises(CatalogFormatError, match=r"c\.xml: an XML feed: the document has no <rss><channel> element"):
        read(f"<rss {G}><item><g:id>1</g:id></item></rss>".encode(), "c.xml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            rss("<g:id>1</g:id>", "<g:id>2</g:id")[:-40],
            r"line 2, column \d+: malformed XML: (unclosed token|no element found)",
        ),
        (
            rss("<g:id>1</g:id><title>a & b</title>"),
            r"line 2, column \d+: malformed XML: not well-formed .*write & as|an & not",
        ),
        (rss("<title>caf&eacute;</title>"), r"malformed XML: undefined entity .*write & as &amp;"),
        (rss("<title>caf\xe9</title>").replace(b"\xc3\xa9", b"\xe9"), r"malformed XML: not well-formed"),
        (
            b"<rss><channel><item><x:id>1</x:id></item></channel></rss>",
            r"line 1, column 21: malformed XML: unbound prefix",
        ),
    ],
)
def test_malformed_xml_is_refused_with_its_line_and_column(data: bytes, message: str):
    with pytest.raises(CatalogFormatError, match=message):
        read(data, "c.xml")


def test_an_xml_record_past_the_limits_is_refused():
    big = rss("<g:id>1</g:id>", "<g:id>2</g:id><description>" + "x" * 50_000 + "</description>")
    with pytest.raises(
        CatalogFormatError, match=r"c\.xml, record 2, from byte [\d,]+: the record is larger than 1,000"
    ):
        read(big, "c.xml", max_record_bytes=1_000)
    deep = rss("<g:id>1</g:id>" + "<a>" * (MAX_NESTING + 1) + "</a>" * (MAX_NESTING + 1))
    with pytest.raises(CatalogFormatError, match=f"record 1: the record is nested more than {MAX_NESTING} levels deep"):
        read(deep, "c.xml")
    fits = rss("<g:id>1</g:id>" + "<a>" * (MAX_NESTING - 1) + "x" + "</a>" * (MAX_NESTING - 1))
    [record] = read(fits, "c.xml")
    orjson.dumps({"run": "r", "record": record})  # a quarantine line can hold it


def test_xml_content_is_checked_against_its_name():
    with pytest.raises(
        CatalogFormatError,
        match=r"c\.xml, byte 0: named \.xml but does not begin with an XML tag \(it looks like JSON\)",
    ):
        read(b'[{"id": 1}]', "c.xml")
    with pytest.raises(CatalogFormatError, match=r"c\.json, byte 0: .* \(it looks like XML: name it \.xml\)"):
        read(rss("<g:id>1</g:id>"), "c.json")
    assert read(gzip.compress(rss("<g:id>1</g:id>")), "c.xml.gz") == [{"id": "1"}]
    assert read(b"\xef\xbb\xbf" + rss("<g:id>1</g:id>"), "c.xml") == [{"id": "1"}]


# ---------------------------------------------------------------- XML that would reach outside the file


class _Recorder(BaseHTTPRequestHandler):
    requests: list[str] = []  # noqa: RUF012  # shared by the server's handlers: what was asked for

    def do_GET(self) -> None:
        _Recorder.requests.append(self.path)
        body = b'<!ENTITY leak "SECRET-FROM-THE-NETWORK">'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_url() -> Iterator[str]:
    _Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("SECRET-FROM-THE-DISK")
    return path


def _doctypes(secret_file: Path, http_url: str) -> dict[str, str]:
    """DTDs that would read a file, fetch a URL or expand without bound, if the parser let them."""
    laughs = '<!ENTITY lol0 "lol">' + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return {
        "xxe-file": f'<!DOCTYPE rss [<!ENTITY leak SYSTEM "{secret_file.as_uri()}">]>',
        "xxe-http": f'<!DOCTYPE rss [<!ENTITY leak SYSTEM "{http_url}/entity">]>',
        "parameter-entity": f'<!DOCTYPE rss [<!ENTITY % remote SYSTEM "{http_url}/dtd"> %remote;]>',
        "external-dtd": f'<!DOCTYPE rss SYSTEM "{http_url}/feed.dtd">',
        "internal-entity": '<!DOCTYPE rss [<!ENTITY leak "declared inside">]>',
        "billion-laughs": f'<!DOCTYPE rss [{laughs}<!ENTITY leak "&lol9;">]>',
    }


@pytest.mark.parametrize(
    "case", ["xxe-file", "xxe-http", "parameter-entity", "external-dtd", "internal-entity", "billion-laughs"]
)
def test_no_dtd_entity_or_external_resource_is_ever_declared_expanded_or_fetched(
    case: str, secret_file: Path, http_url: str
):
    doctype = _doctypes(secret_file, http_url)[case]
    data = (
        f'<?xml version="1.0"?>\n{doctype}\n<rss version="2.0" {G}><channel>'
        "<item><g:id>1</g:id><title>&leak;</title></item></channel></rss>"
    ).encode()
    with pytest.raises(CatalogFormatError) as raised:
        read(data, "c.xml")
    message = str(raised.value)
    assert message == (
        "c.xml: the file declares a DTD (<!DOCTYPE>); a DTD can define entities that read other files or expand "
        "without bound, and a product feed needs none: remove it"
    )
    assert "SECRET" not in message and "lol" not in message
    assert _Recorder.requests == []  # nothing was fetched


def test_an_html_page_named_xml_is_named_so():
    page = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body></body></html>"
    with pytest.raises(
        CatalogFormatError, match=r"c\.xml: the file is an HTML page \(<!DOCTYPE html>\), not an XML feed"
    ):
        read(page, "c.xml")


def test_an_entity_used_without_a_dtd_is_undefined_not_resolved(secret_file: Path):
    with pytest.raises(CatalogFormatError, match="undefined entity") as raised:
        read(rss("<g:id>1</g:id><title>&leak;</title>"), "c.xml")
    assert "SECRET" not in str(raised.value)


# ---------------------------------------------------------------- tab-separated


@pytest.mark.parametrize("name", ["c.tsv", "c.txt", "c.tsv.gz", "c.txt.gz"])
def test_tab_separated_files_are_read_with_tabs_whatever_csv_delimiter_says(name: str):
    data = b'id\ttitle\tprice\n1\t"12"" pan, non-stick"\t9.99 USD\n2\t"two\nlines"\t\n'
    raw = gzip.compress(data) if name.endswith(".gz") else data
    stream = open_catalog(io.BytesIO(raw), name, id_field="id", csv_delimiter=";")
    assert list(stream.records()) == [
        (2, {"id": "1", "title": '12" pan, non-stick', "price": "9.99 USD"}),
        (3, {"id": "2", "title": "two\nlines", "price": ""}),
    ]
    assert stream.location(3) == "line 3"


def test_tab_separated_content_is_checked_and_a_tabbed_csv_is_pointed_at_tsv():
    with pytest.raises(CatalogFormatError, match=r"c\.tsv, byte 0: named tab-separated but holds XML or HTML"):
        read(rss("<g:id>1</g:id>"), "c.tsv", id_field="id")
    with pytest.raises(CatalogFormatError, match=r"c\.txt, byte 0: named tab-separated but holds JSON"):
        read(b'[{"id": 1}]', "c.txt", id_field="id")
    with pytest.raises(CatalogFormatError, match=r"the header looks tab-separated: name the file \.tsv"):
        read(b"id\ttitle\n1\tx\n", "c.csv", id_field="id")
    with pytest.raises(CatalogFormatError, match=r"c\.tsv, line 1: the CSV header has no 'id' column"):
        read(b"sku\ttitle\n1\tx\n", "c.tsv", id_field="id")


@pytest.mark.parametrize("records", ["products", None])
def test_a_document_nested_too_deep_is_refused_at_once(records: str | None):
    # Every event of a deeply nested document costs the parser its whole path: at 20,000 levels reading it took
    # seconds, at 100,000 minutes. It is refused as soon as it passes the nesting limit, wherever the nesting is.
    depth = 20_000
    doc = b'{"meta": ' + b"[" * depth + b"]" * depth + b', "products": [{"id": 1}]}'
    with pytest.raises(CatalogFormatError, match=r"c\.json, from byte [\d,]+: the document is nested more than"):
        list(open_catalog(io.BytesIO(doc), "c.json", records=records).records())
