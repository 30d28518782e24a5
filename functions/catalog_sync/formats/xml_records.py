"""XML feeds: Google Merchant Center's RSS 2.0 and Atom 1.0 product feeds, or any XML with repeated record elements.

Parsed by defusedxml on the standard library's expat: a DTD (<!DOCTYPE>) is refused outright, so no entity is ever
declared, expanded or fetched (XXE, billion laughs), and elements are dropped as soon as they are read, so memory
does not grow with the feed.

How an element becomes a record (README, "Catalog configuration"):
- The records are the elements at a path of local names from the root: `rss.channel.item` for RSS 2.0 and
  `feed.entry` for Atom 1.0 by default, `[source] records` for other XML ("catalog.product").
- Each child element is a field named by its local name, the namespace prefix dropped (`<g:price>` is `price`). A
  `g:` element wins over an RSS or Atom element of the same name (Atom's `<id>` beside `<g:id>`).
- A leaf's value is its text, trimmed (CDATA is text); an empty leaf with an `href` (Atom's `<link href="..."/>`)
  is the href. An element with child elements is an object of them, by the same rules (`<g:shipping>`).
- An element that occurs more than once is a list of its values, in order; Google's repeatable attributes
  (REPEATED) are lists even when they occur once, so a field's type does not change from item to item.
- The record element's own attributes are fields too (`<product sku="p1">`); a child element of the same name wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.ElementTree import iterparse

from catalog_sync.formats.detection import skip_bom
from catalog_sync.formats.json_records import MAX_NESTING
from catalog_sync.formats.limits import DEFAULT_MAX_RECORD_BYTES, PositionTracker, RecordTooLarge
from catalog_sync.formats.records import CatalogFormatError, RawRecord

GOOGLE_NAMESPACE = "http://base.google.com/ns/1.0"
RSS_RECORDS = ("rss", "channel", "item")
ATOM_RECORDS = ("feed", "entry")
_DEFAULT_RECORDS = {path[0]: path for path in (RSS_RECORDS, ATOM_RECORDS)}

# Google Merchant Center attributes that may be given more than once (its product data specification): always lists.
REPEATED = frozenset(
    {
        "additional_image_link",
        "lifestyle_image_link",
        "product_detail",
        "product_highlight",
        "shipping",
        "free_shipping_threshold",
        "tax",
        "included_destination",
        "excluded_destination",
        "shopping_ads_excluded_country",
        "promotion_id",
        "certification",
        "loyalty_program",
        "carrier_shipping",
    }
)
_XML_CHUNK = 8 * 1024
_POSITION_SUFFIX = re.compile(r": line \d+, column \d+$")


def _split(tag: str) -> tuple[str | None, str]:
    """An ElementTree tag ("{namespace}local") as its namespace and local name."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


def _value(element: Element) -> Any:
    if len(element):
        return _fields(element)
    text = (element.text or "").strip()
    if not text and "href" in element.attrib:
        return element.attrib["href"].strip()
    return text


def _fields(element: Element) -> dict[str, Any]:
    """An element's children as fields: local names, g: first, repeated ones (and Google's repeatable) as lists."""
    grouped: dict[str, list[Any]] = {}
    from_google: set[str] = set()
    for child in element:
        namespace, key = _split(child.tag)
        if namespace == GOOGLE_NAMESPACE:
            if key not in from_google:
                from_google.add(key)
                grouped[key] = []  # an RSS or Atom element of the same name gives way
        elif key in from_google:
            continue
        grouped.setdefault(key, []).append(_value(child))
    return {key: values if len(values) > 1 or key in REPEATED else values[0] for key, values in grouped.items()}


def element_record(element: Element) -> dict[str, Any]:
    """One record element as a record (the rules in this module's docstring)."""
    record: dict[str, Any] = {_split(name)[1]: value.strip() for name, value in element.attrib.items()}
    record.update(_fields(element))
    return record


def _tags(path: tuple[str, ...]) -> str:
    return "".join(f"<{name}>" for name in path)


def _describe_parse_error(exc: ParseError) -> str:
    message = _POSITION_SUFFIX.sub("", str(exc))
    if message.startswith("undefined entity"):
        message += " (XML knows only &amp; &lt; &gt; &quot; &apos; and numeric references: write & as &amp;)"
    elif message.startswith("not well-formed"):
        message += " (an & not written as &amp;, a stray <, or bytes that are not UTF-8)"
    return f"malformed XML: {message}"


def _describe_refusal(exc: DefusedXmlException) -> str:
    if isinstance(exc, DTDForbidden):
        return (
            "the file declares a DTD (<!DOCTYPE>); a DTD can define entities that read other files or expand "
            "without bound, and a product feed needs none: remove it"
        )
    if isinstance(exc, EntitiesForbidden):
        return f"the file declares an entity ({exc.name!r}); entities are refused: remove the declaration"
    return "the file refers to an external resource (DTD or entity); external resources are never fetched"


def iter_xml(
    stream: IO[bytes],
    name: str,
    *,
    records: str | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> Iterator[RawRecord]:
    """The record elements of an XML document, each as a record, numbered from 1."""
    skip_bom(stream)  # expat reads a BOM itself, but the tracker's positions should match the other readers'
    tracker = PositionTracker(stream, max_record_bytes, chunk=_XML_CHUNK)
    path = tuple(records.split(".")) if records else None
    opened: list[Element] = []  # the open elements, root first
    names: list[str] = []  # their local names
    root = ""
    parent_seen = False  # the record elements' parent was there: no record in it is an empty catalog
    index = 0
    try:
        for event, element in iterparse(tracker, events=("start", "end"), forbid_dtd=True):
            if event == "start":
                opened.append(element)
                names.append(_split(element.tag)[1])
                root = root or names[0]
                if path is None:
                    path = _default_path(name, names)
                    if path is None:
                        continue
                elif len(names) == 1 and names[0] != path[0]:
                    raise CatalogFormatError(
                        name, None, f'[source] records = "{records}", but the XML root is <{names[0]}>'
                    )
                if len(names) > len(path) + MAX_NESTING:
                    raise CatalogFormatError(
                        name, f"record {index + 1:,}", f"the record is nested more than {MAX_NESTING} levels deep"
                    )
                if len(names) == len(path) - 1 and tuple(names) == path[:-1]:
                    parent_seen = True
                continue
            depth = len(names)
            if path is not None and depth <= len(path):
                if depth == len(path) and tuple(names) == path:
                    index += 1
                    yield index, element_record(element)
                    tracker.record_start = tracker.position
                if depth > 1:  # read: let it go (the root, a few elements at most, stays until the end)
                    opened[-2].remove(element)
            opened.pop()
            names.pop()
    except ParseError as exc:
        line, column = exc.position  # expat counts columns from 0
        raise CatalogFormatError(name, f"line {line:,}, column {column + 1:,}", _describe_parse_error(exc)) from None
    except DefusedXmlException as exc:
        raise CatalogFormatError(name, None, _describe_refusal(exc)) from None
    except RecordTooLarge:
        raise CatalogFormatError(
            name,
            f"record {index + 1:,}, from byte {tracker.record_start:,}",
            f"the record is larger than {max_record_bytes:,} bytes, the limit for one record",
        ) from None
    if path is None:  # a root without children, neither RSS nor Atom
        raise _not_a_feed(name, root, None)
    if not parent_seen and len(path) > 1:
        where = f'[source] records = "{records}"' if records else "an XML feed"
        raise CatalogFormatError(
            name, None, f"{where}: the document has no {_tags(path[:-1])} element, so no <{path[-1]}> records"
        )


def _default_path(name: str, names: list[str]) -> tuple[str, ...] | None:
    """The records' path when [source] records is unset: RSS 2.0's or Atom's, from the root; other XML is refused,
    suggesting the path its first child gives."""
    default = _DEFAULT_RECORDS.get(names[0])
    if default is not None:
        return default
    if len(names) == 1:
        return None  # wait for the root's first child, to suggest its path
    raise _not_a_feed(name, names[0], names[1])


def _not_a_feed(name: str, root: str, first_child: str | None) -> CatalogFormatError:
    example = f'e.g. records = "{root}.{first_child}"' if first_child else f'e.g. records = "{root}.product"'
    return CatalogFormatError(
        name,
        None,
        f"the XML root is <{root}>, not an RSS 2.0 <rss> or Atom <feed> feed: set [source] records to the path "
        f"of the record elements, {example}",
    )
