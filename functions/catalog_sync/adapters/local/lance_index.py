"""The embedded default's vector index: a LanceDB table on disk that persists between runs.

Metadata is kept twice: as one JSON column (exact, for export) and as typed columns `meta_<field>` so that
queries can filter on it. A change of embedding dimension or metadata fields rebuilds the table; the caller
then re-sends every product (through the embedding cache).

Any product id is a vector id here (no alphabet or length limit): the `id` column is the product id. A row the
table cannot take (a metadata value its typed column cannot hold) is refused alone: the write returns it with
the reason, and the other rows are written.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from catalog_sync.logic.isolation import send_isolating
from catalog_sync.logic.vector_ids import ANY_ID
from catalog_sync.models.changes import Change
from catalog_sync.models.config import CatalogConfig, FieldType
from catalog_sync.models.index import IndexCapabilities, IndexEntry, MetadataLimits
from catalog_sync.ports import Vectors

TABLE = "products"
# Writes after which the table is compacted and its id index refreshed (each write adds a version and a
# fragment; unindexed fragments make id lookups, merges and deletes scan).
MAINTAIN_AFTER_WRITES = 10_000
_DELETE_CHUNK = 1_000
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Any id, no batch or metadata size limit; a metadata update rewrites the rows (stored vectors kept) in one merge.
LANCE_CAPABILITIES = IndexCapabilities(
    vector_ids=ANY_ID,
    metadata_update=True,
    metadata_update_unsets=True,
    metadata_update_batch=True,
    metadata=MetadataLimits(value_types=frozenset(FieldType)),
)


class LocalIndexError(RuntimeError):
    """The local index cannot do what was asked."""


class NoLocalIndex(LocalIndexError):
    """A reader asked for the index as it is stored, and there is none yet."""


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _refusal(exc: Exception) -> str | None:
    """Why a row cannot go into the table (a value its column cannot hold), or None for any other error."""
    import pyarrow as pa

    if isinstance(exc, pa.ArrowException | OverflowError | orjson.JSONEncodeError):
        return f"the local index cannot store it: {exc}"
    return None


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _sql_string(str(value))


class LanceVectorIndex:
    capabilities = LANCE_CAPABILITIES

    def __init__(
        self, path: Path, config: CatalogConfig, dimension: int | None, *, rebuild_on_mismatch: bool = True
    ) -> None:
        """`dimension` None: the index as it is stored, whatever its vectors' dimension, for a reader that embeds
        nothing (NoLocalIndex when there is none); such a reader never creates or rebuilds it."""
        import lancedb
        import pyarrow as pa

        if dimension is None and not path.exists():
            raise NoLocalIndex(f"there is no local index at {path} yet")
        self._pa = pa
        self.path = path
        self._metadata_types = dict(config.metadata)
        self._db = lancedb.connect(str(path))
        self.rebuilt = False
        self._writes_since_maintenance = 0
        try:
            self._table = self._db.open_table(TABLE)
        except (ValueError, FileNotFoundError):
            if dimension is None:
                raise NoLocalIndex(f"there is no local index at {path} yet") from None
            self.dimension = dimension
            self._schema = self._build_schema(dimension)
            self._table = self._db.create_table(TABLE, schema=self._schema)
            return
        stored = self._table.schema.field("vector").type.list_size
        self.dimension = stored if dimension is None else dimension
        self._schema = self._build_schema(self.dimension)
        if self._table.schema.equals(self._schema):
            return
        if not rebuild_on_mismatch or dimension is None:
            if stored != self.dimension:
                raise LocalIndexError(
                    f"the local index at {path} holds vectors of another embedder (vector dimension {stored}, "
                    f"asked for {self.dimension})"
                )
            fields = ", ".join(
                name.removeprefix("meta_") for name in self._table.schema.names if name.startswith("meta_")
            )
            raise LocalIndexError(
                f"the local index at {path} was built for other metadata fields ({fields or 'none'}) than the "
                f"config's ({', '.join(self._metadata_types) or 'none'}): use the config it was built with; the "
                "next `sync` with this one rebuilds it"
            )
        # Dimension or metadata fields changed: the old rows cannot be kept.
        self._db.drop_table(TABLE)
        self._table = self._db.create_table(TABLE, schema=self._schema)
        self.rebuilt = True

    def _arrow_type(self, field_type: FieldType) -> Any:
        pa = self._pa
        return {
            FieldType.STRING: pa.string(),
            FieldType.NUMBER: pa.float64(),
            FieldType.INTEGER: pa.int64(),
            FieldType.BOOLEAN: pa.bool_(),
            FieldType.STRING_LIST: pa.list_(pa.string()),
        }[field_type]

    def _build_schema(self, dimension: int) -> Any:
        pa = self._pa
        fields = [
            pa.field("id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
            pa.field("text", pa.string()),
            pa.field("text_hash", pa.string()),
            pa.field("metadata_json", pa.string()),
        ]
        fields += [pa.field(f"meta_{name}", self._arrow_type(kind)) for name, kind in self._metadata_types.items()]
        return pa.schema(fields)

    def _metadata_columns(self, changes: Sequence[Change]) -> dict[str, Any]:
        columns: dict[str, Any] = {"metadata_json": [orjson.dumps(c.metadata or {}).decode() for c in changes]}
        for name, kind in self._metadata_types.items():
            columns[f"meta_{name}"] = self._pa.array(
                [(c.metadata or {}).get(name) for c in changes], type=self._arrow_type(kind)
            )
        return columns

    def _tables(self, rows: Sequence[Any], build: Any) -> tuple[list[Any], dict[str, str]]:
        """Arrow tables of `rows` ((product id, ...) tuples), leaving out (and returning, with the reason) each row
        the schema cannot take."""
        tables: list[Any] = []
        outcome = send_isolating(rows, lambda part: tables.append(build(part)), refusal=_refusal, budget=2 * len(rows))
        return tables, {row[0]: reason for row, reason in outcome.refused}

    def upsert(self, ids: Sequence[str], vectors: Vectors, changes: Sequence[Change]) -> dict[str, str]:
        """Write the rows; returns the products the table refused, with the reasons (the others are written)."""
        if not ids:
            return {}
        pa = self._pa
        flat = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), -1)

        def build(part: Sequence[tuple[str, Any, Change]]) -> Any:
            columns: dict[str, Any] = {
                "id": pa.array([pid for pid, _, _ in part], type=pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(np.concatenate([vector for _, vector, _ in part]), type=pa.float32()), self.dimension
                ),
                "text": [c.text for _, _, c in part],
                "text_hash": [c.text_hash for _, _, c in part],
            }
            columns.update(self._metadata_columns([c for _, _, c in part]))
            return pa.table(columns, schema=self._schema)

        tables, refused = self._tables(list(zip(ids, flat, changes, strict=True)), build)
        if tables:
            table = pa.concat_tables(tables)
            self._table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(table)
            self._writes_since_maintenance += table.num_rows
        return refused

    def update_metadata(self, changes: Sequence[Change]) -> dict[str, str]:
        """Rewrite metadata in place; the stored vector and text are kept (no embedding). Returns the products the
        table refused, with the reasons; a product not in the index fails the batch."""
        if not changes:
            return {}
        pa = self._pa
        # LanceDB's partial-column merge is an order of magnitude slower than a whole-row one, so the rows'
        # vectors are read back and written whole.
        stored = self._rows([c.product_id for c in changes], ["id", "vector", "text", "text_hash"])
        missing = [c.product_id for c in changes if c.product_id not in stored]
        if missing:
            raise LocalIndexError(f"metadata update for {len(missing)} products not in the index, e.g. {missing[0]!r}")

        def build(part: Sequence[tuple[str, Change]]) -> Any:
            rows = [stored[pid] for pid, _ in part]
            columns: dict[str, Any] = {
                "id": pa.array([pid for pid, _ in part], type=pa.string()),
                "vector": pa.array([row["vector"] for row in rows], type=self._schema.field("vector").type),
                "text": [row["text"] for row in rows],
                "text_hash": [row["text_hash"] for row in rows],
            }
            columns.update(self._metadata_columns([c for _, c in part]))
            return pa.table(columns, schema=self._schema)

        tables, refused = self._tables([(c.product_id, c) for c in changes], build)
        if tables:
            table = pa.concat_tables(tables)
            self._table.merge_insert("id").when_matched_update_all().execute(table)
            self._writes_since_maintenance += table.num_rows
        return refused

    def _rows(self, ids: Sequence[str], columns: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _DELETE_CHUNK):
            chunk = ids[start : start + _DELETE_CHUNK]
            where = f"id IN ({','.join(_sql_string(i) for i in chunk)})"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for batch in self._table.search().where(where).select(columns).limit(None).to_batches():
                    for row in batch.to_pylist():
                        found[row["id"]] = row
        return found

    def delete(self, ids: Sequence[str]) -> dict[str, str]:
        for start in range(0, len(ids), _DELETE_CHUNK):
            chunk = ids[start : start + _DELETE_CHUNK]
            self._table.delete(f"id IN ({','.join(_sql_string(i) for i in chunk)})")
        self._writes_since_maintenance += len(ids)
        return {}  # a delete by id has nothing the table could refuse

    def _scan(self, columns: list[str]) -> Iterator[Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield from self._table.search().select(columns).limit(None).to_batches(10_000)

    def ids(self) -> set[str]:
        found: set[str] = set()
        for batch in self._scan(["id"]):
            found.update(batch.column("id").to_pylist())
        return found

    def count(self) -> int:
        return int(self._table.count_rows())

    def where_clause(self, filters: Mapping[str, Any]) -> str:
        clauses = []
        for name, value in filters.items():
            if name == "id":
                clauses.append(f"id = {_sql_string(str(value))}")
                continue
            kind = self._metadata_types.get(name)
            if kind is None or not _IDENTIFIER.match(name):
                raise LocalIndexError(f"cannot filter on {name!r}: not a metadata field of this catalog")
            if kind is FieldType.STRING_LIST:
                clauses.append(f"array_has(meta_{name}, {_sql_string(str(value))})")
            else:
                clauses.append(f"meta_{name} = {_sql_literal(value)}")
        return " AND ".join(clauses)

    def query(self, vector: Vectors, k: int, filters: Mapping[str, Any] | None = None) -> list[IndexEntry]:
        # LanceDB's typing misses metric() on the vector query builder it returns here.
        search = self._table.search(np.asarray(vector, dtype=np.float32)).metric("cosine")  # type: ignore[attr-defined]
        if filters:
            search = search.where(self.where_clause(filters), prefilter=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = search.select(["id", "text", "text_hash", "metadata_json", "_distance"]).limit(k).to_list()
        return [
            IndexEntry(
                id=row["id"],
                text=row["text"],
                text_hash=row["text_hash"],
                metadata=orjson.loads(row["metadata_json"]),
                score=1.0 - float(row["_distance"]),
            )
            for row in rows
        ]

    def export(self) -> Iterator[IndexEntry]:
        for batch in self._scan(["id", "text", "text_hash", "metadata_json"]):
            for row in batch.to_pylist():
                yield IndexEntry(
                    id=row["id"],
                    text=row["text"],
                    text_hash=row["text_hash"],
                    metadata=orjson.loads(row["metadata_json"]),
                )

    def vectors(self, ids: Sequence[str]) -> dict[str, Vectors]:
        """Stored vectors of some products (for checks and tests)."""
        return {
            pid: np.asarray(row["vector"], dtype=np.float32) for pid, row in self._rows(ids, ["id", "vector"]).items()
        }

    def maintain(self, *, force: bool = False) -> bool:
        """After many writes: index the ids (once) and compact the table. Returns whether it did anything."""
        if not force and self._writes_since_maintenance < MAINTAIN_AFTER_WRITES:
            return False
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not any(index.columns == ["id"] for index in self._table.list_indices()):
                self._table.create_scalar_index("id")
            self._table.optimize()
        self._writes_since_maintenance = 0
        return True
