"""XML feeds: Google Merchant Center's RSS 2.0 and Atom 1.0 product feeds, or any XML with repeated record elements.

Parsed by defusedxml on the standard library's expat: a DTD (<!DOCTYPE>) is refused outright, so no entity is ever
declared, expanded or fetched (XXE, billion laughs), and elements are dropped as soon as they are read, so memory
does not grow with the feed.

How an element becomes a record (README, "Feeds: XML, tab-separated text and wrapped JSON"):
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

import functools
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


@functools.lru_cache(maxsize=4096)  # a feed repeats a few dozen tags; a hostile one cannot grow this
def _split(tag: str) -> tuple[str | None, str]:
    """An ElementTree tag ("{namespace}local") as its namespace and local name."""
    if tag[:1] == "{":
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


def _value(element: Element) -> Any:
    if len(element):
        return _fields(element)
    text = element.text
    text = text.strip() if text else ""
    if not text and "href" in element.attrib:
        return element.attrib["href"].strip()
    return text


def _fields(element: Element) -> dict[str, Any]:
    """An element's children as fields: local names, g: first, repeated ones (and Google's repeatable) as lists."""
    fields: dict[str, Any] = {}
    plain: set[str] = set()  # keys whose value came from an element outside the g: namespace
    for child in element:
        namespace, key = _split(child.tag)
        google = namespace == GOOGLE_NAMESPACE
        value = _value(child)
        if key not in fields or (google and key in plain):  # new, or a g: element over an RSS or Atom one
            fields[key] = [value] if key in REPEATED else value
            if google:
                plain.discard(key)
            else:
                plain.add(key)
        elif google or key in plain:  # the same key again, from the same kind of element
            existing = fields[key]
            if type(existing) is list:
                existing.append(value)
            else:
                fields[key] = [existing, value]
        # else: an RSS or Atom element where a g: one gave the key already
    return fields


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
    if isinstance(exc, DTDForbidden) and (exc.name or "").lower() == "html":
        return "the file is an HTML page (<!DOCTYPE html>), not an XML feed: an error page saved in its place?"
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
    record_depth = len(path) if path else 0
    # Only the elements down to the records' depth are tracked: what is inside a record is its element's.
    opened: list[Element] = []
    depth = 0
    matched = 0  # how many of the open elements, from the root, are the path's
    root = ""
    parent_seen = False  # the record elements' parent was there: no record in it is an empty catalog
    index = 0
    try:
        for event, element in iterparse(tracker, events=("start", "end"), forbid_dtd=True):
            if event == "start":
                depth += 1
                if depth > record_depth:
                    if path is None:  # the root, or its first child: what the path is
                        root = root or _split(element.tag)[1]
                        path = _default_path(name, root, None if depth == 1 else _split(element.tag)[1])
                        if path is None:
                            continue
                        record_depth = len(path)
                        if depth > record_depth:
                            continue
                    elif depth > record_depth + MAX_NESTING:
                        raise CatalogFormatError(
                            name, f"record {index + 1:,}", f"the record is nested more than {MAX_NESTING} levels deep"
                        )
                    else:
                        continue
                opened.append(element)
                if path is not None and matched == depth - 1 and _split(element.tag)[1] == path[depth - 1]:
                    matched = depth
                    if depth == record_depth - 1:
                        parent_seen = True
                elif depth == 1:
                    raise CatalogFormatError(
                        name, None, f'[source] records = "{records}", but the XML root is <{_split(element.tag)[1]}>'
                    )
                continue
            if depth <= record_depth:
                if matched == depth:
                    if depth == record_depth:
                        index += 1
                        yield index, element_record(element)
                        tracker.record_start = tracker.position
                    matched -= 1
                opened.pop()
                if opened:  # read: let it go (the root, a few elements at most, stays until the end)
                    opened[-1].remove(element)
            depth -= 1
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


def _default_path(name: str, root: str, first_child: str | None) -> tuple[str, ...] | None:
    """The records' path when [source] records is unset: RSS 2.0's or Atom's, from the root; other XML is refused,
    suggesting the path its first child gives (None: wait for that child)."""
    default = _DEFAULT_RECORDS.get(root)
    if default is not None or first_child is None:
        return default
    raise _not_a_feed(name, root, first_child)


def _not_a_feed(name: str, root: str, first_child: str | None) -> CatalogFormatError:
    example = f'e.g. records = "{root}.{first_child}"' if first_child else f'e.g. records = "{root}.product"'
    return CatalogFormatError(
        name,
        None,
        f"the XML root is <{root}>, not an RSS 2.0 <rss> or Atom <feed> feed: set [source] records to the path "
        f"of the record elements, {example}",
    )
