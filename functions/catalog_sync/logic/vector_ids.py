"""Vector ids: product ids mapped into a target's id alphabet and length, deterministically.

A target declares its rules (`VectorIdRules`). A target without restrictions (the local LanceDB index) keeps
every product id as it is. For a restricted one (Pinecone: printable ASCII, at most 512 bytes):

- a product id that is printable ASCII, within the length limit and does not begin with `~` is the vector id;
- any other id is encoded as `~<slug>~<digest>`:
  - `digest`: the first 32 hex digits of the SHA-256 of the id's UTF-8 bytes (the id as validated: trimmed, NFC);
  - `slug`: a readable hint. The id in NFKD form, with every non-ASCII character dropped and every ASCII
    character other than letters, digits, `.`, `_` and `-` replaced by `-`, cut to 64 characters (or less,
    where the limit requires).

No encoded id equals a pass-through id (only encoded ids begin with `~`, which is why an id that itself begins with
`~` is encoded too), and two product ids share an encoded id only if their digests collide (128 bits). Look-alike
ids stay apart: `р1` (Cyrillic) is encoded, `p1` is not; `P1` and `p1` are two ids; `café-1` spelt with a
combining accent is the same product as `café-1` (the validator stores ids NFC).

The original id is kept beside an encoded vector id, in the metadata key `_product_id` (catalog metadata field
names cannot begin with `_`); export, query and status show it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from catalog_sync.models.index import VectorIdRules

ENCODED_PREFIX = "~"
SEPARATOR = "~"
DIGEST_CHARS = 32
SLUG_CHARS = 64
# The metadata key that holds the product id beside an encoded vector id.
ORIGINAL_ID_KEY = "_product_id"
# The strictest rules of any supported target (Pinecone's): the validator budgets metadata against them.
PORTABLE_RULES = VectorIdRules(ascii_only=True, max_bytes=512)
# The rules of a target that takes any id (LanceDB).
ANY_ID = VectorIdRules()

_NOT_SLUG = re.compile(r"[^A-Za-z0-9._-]")


def passes_through(product_id: str, rules: VectorIdRules) -> bool:
    """Whether the product id is its own vector id at a target with these rules."""
    if not rules.restricted:
        return True
    if rules.ascii_only and not (product_id.isascii() and product_id.isprintable()):
        return False
    if rules.max_bytes is not None and len(product_id.encode()) > rules.max_bytes:
        return False
    return not product_id.startswith(ENCODED_PREFIX)


def slug(product_id: str, limit: int = SLUG_CHARS) -> str:
    """The readable part of an encoded id (see the module's docstring)."""
    ascii_only = unicodedata.normalize("NFKD", product_id).encode("ascii", "ignore").decode("ascii")
    return _NOT_SLUG.sub("-", ascii_only)[:limit]


def digest(product_id: str) -> str:
    return hashlib.sha256(product_id.encode()).hexdigest()[:DIGEST_CHARS]


def vector_id(product_id: str, rules: VectorIdRules) -> str:
    """The id the product's vector has at a target with these rules."""
    if passes_through(product_id, rules):
        return product_id
    room = SLUG_CHARS
    if rules.max_bytes is not None:
        room = min(room, rules.max_bytes - len(ENCODED_PREFIX) - len(SEPARATOR) - DIGEST_CHARS)
    return f"{ENCODED_PREFIX}{slug(product_id, room)}{SEPARATOR}{digest(product_id)}"


def is_encoded(vector_id_: str, rules: VectorIdRules) -> bool:
    """Whether a vector id found at the target may be an encoded one (its product id is then in the metadata)."""
    return rules.restricted and vector_id_.startswith(ENCODED_PREFIX)


def legacy_vector_id(product_id: str, rules: VectorIdRules) -> str | None:
    """The vector id an earlier version wrote this product under, where it differs from today's: ids that begin
    with `~` were kept as they were. None for every other id."""
    if not rules.restricted or not product_id.startswith(ENCODED_PREFIX):
        return None
    fits = rules.max_bytes is None or len(product_id.encode()) <= rules.max_bytes
    if rules.ascii_only and not (product_id.isascii() and product_id.isprintable()):
        return None
    return product_id if fits else None
