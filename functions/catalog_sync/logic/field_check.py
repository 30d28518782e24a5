"""The config's field names checked against the names the catalog's records really have.

A misspelt name is otherwise silent: every product simply lacks the field (a metadata field, a text field), or
every record is quarantined with the same reason (`missing id`) and no hint of why. The check watches the records
stream past (bounded memory: the distinct names it keeps are capped) and says, at the end, which names the
config uses that no record has, with the closest names the records do have.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from catalog_sync.formats.names import close_names, did_you_mean
from catalog_sync.formats.records import READER_ERROR_KEY
from catalog_sync.models.config import CatalogConfig, load_preset
from catalog_sync.models.mapping import DerivedField

# Distinct record keys kept for suggestions: a catalog whose records have arbitrary keys cannot grow it further.
MAX_DISTINCT_NAMES = 10_000
# Records of one export mostly share their keys: each distinct key list (a shape) is counted once, and looked
# into at the end. Beyond this many shapes, or for a record with more keys, a record is looked into at once.
MAX_SHAPES = 256
MAX_SHAPE_KEYS = 256
# Names listed when an id_field has no close match: enough to see what the records call things.
NAMES_LISTED = 12


class Severity(StrEnum):
    # The run cannot be right: no record has an id, every record lacks a required field, no row can be grouped.
    ERROR = "error"
    # The run goes on, but the field is absent from every product.
    WARNING = "warning"


@dataclass(frozen=True)
class _UseKind:
    label: str  # how a message names the setting: "metadata field 'x'"
    severity: Severity
    consequence: str | None = None


# The settings that name record fields, in the order a message lists them.
_KINDS = {
    "id_field": _UseKind("id_field", Severity.ERROR),
    "required_fields": _UseKind("required", Severity.ERROR, "every record is quarantined"),
    "source.group_by": _UseKind("source.group_by", Severity.ERROR, "no rows are grouped into products"),
    "text.fields": _UseKind("text", Severity.WARNING),
    "metadata": _UseKind("metadata", Severity.WARNING),
    "priority_fields": _UseKind("priority", Severity.WARNING),
}


class FieldProblem(BaseModel):
    """A name the config uses that no record has."""

    severity: Severity
    # The record key looked for (for a derived field: the first part of its `from` path).
    field: str
    # Where the config uses it: "id_field", "text.fields", "metadata", "required_fields", "priority_fields",
    # "source.group_by", or "fields.NAME" for a derived field reading it.
    settings: list[str]
    suggestions: list[str]
    message: str


class FieldCheckReport(BaseModel):
    """What the check saw, and the names the config uses that it never saw."""

    records_checked: int
    # Records the check did not see: unchanged JSON Lines lines the diff does not parse. They were valid under
    # this same config last time (the fast path's fingerprints are seeded with it), so they prove the id and the
    # required fields present; but they might hold any optional field, so nothing is reported from a partial view.
    records_not_parsed: int
    # Whether every record was seen: only then are problems reported.
    complete: bool
    distinct_names: int
    # More distinct names than the check keeps: a suggestion may miss one of the others.
    names_capped: bool
    # Per record key the config uses: how many of the records checked had it.
    field_counts: dict[str, int]
    problems: list[FieldProblem]
    # Record keys no record had that only the preset's own optional fields read (as the preset defines them): a
    # feed need not use every attribute its format has, so these are said once, not warned of one by one.
    preset_fields_absent: list[str] = []
    preset: str | None = None

    @property
    def errors(self) -> list[FieldProblem]:
        return [problem for problem in self.problems if problem.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[FieldProblem]:
        return [problem for problem in self.problems if problem.severity is Severity.WARNING]


@dataclass
class _Lookup:
    """One record key the config relies on, and every use of it."""

    key: str
    # Other keys whose presence also satisfies it: a derived field's whole `from` path, if it is a column name.
    alternatives: set[str] = field(default_factory=set)
    uses: list[tuple[str, _UseKind]] = field(default_factory=list)
    # For a derived field's use: the path it reads (to name in the message).
    paths: dict[str, str] = field(default_factory=dict)


def _config_uses(config: CatalogConfig) -> dict[str, _Lookup]:
    """Every record key the config names, with where it names it. A name defined in [fields] is derived, not a
    record key: what is looked for is the first part of its `from` path, as severe as the derived field's uses."""
    named: list[tuple[str, str]] = [("id_field", config.id_field)]
    named += [("required_fields", name) for name in config.required_fields]
    if config.source.group_by is not None:
        named.append(("source.group_by", config.source.group_by))
    named += [("text.fields", name) for name in config.text.fields]
    named += [("metadata", name) for name in config.metadata]
    # The default priority fields are a guess at a shop's names: only names the user wrote are checked.
    if "priority_fields" in config.model_fields_set:
        named += [("priority_fields", name) for name in config.priority_fields]

    lookups: dict[str, _Lookup] = {}
    # A derived field is as severe as its most severe use: a derived id_field read from nowhere is an error.
    derived_kinds = {name: _UseKind(f"fields.{name}", Severity.WARNING) for name in config.fields}
    for setting, name in dict.fromkeys(named):  # a name listed twice in one setting is one use
        kind = _KINDS[setting]
        if name in config.fields:
            if kind.severity is Severity.ERROR and derived_kinds[name].severity is not Severity.ERROR:
                consequence = kind.consequence or f"it is the {setting}: nothing can be synced"
                derived_kinds[name] = _UseKind(f"fields.{name}", Severity.ERROR, consequence)
            continue
        lookups.setdefault(name, _Lookup(name)).uses.append((setting, kind))
    for derived, spec in config.fields.items():
        # With alternatives (a list in `from`), a record having any of them is enough: the first is looked for.
        first, *others = spec.paths
        key = first.split(".", 1)[0]
        if key in config.fields:  # read from another derived field, whose own source is checked
            continue
        lookup = lookups.setdefault(key, _Lookup(key))
        for path in (first, *others):
            if path != key:
                lookup.alternatives.add(path)
            lookup.alternatives.add(path.split(".", 1)[0])
        lookup.alternatives.discard(key)
        kind = derived_kinds[derived]
        lookup.uses.append((kind.label, kind))
        lookup.paths[kind.label] = first
    return lookups


def _preset_uses(config: CatalogConfig) -> set[tuple[str, str]]:
    """The optional uses (setting, record key or derived name) that are the preset's own, as it defines them."""
    if config.preset is None:
        return set()
    preset = load_preset(config.preset)
    own: set[tuple[str, str]] = set()
    for name, spec in preset.get("fields", {}).items():
        if config.fields.get(name) == DerivedField.model_validate(spec):
            own.add((f"fields.{name}", name))
    for name, kind in preset.get("metadata", {}).items():
        if config.metadata.get(name) == kind:
            own.add(("metadata", name))
    own.update(("text.fields", name) for name in preset.get("text", {}).get("fields", []) if name in config.text.fields)
    own.update(
        ("priority_fields", name) for name in preset.get("priority_fields", []) if name in config.priority_fields
    )
    return own


def _only_the_presets(lookup: _Lookup, preset_uses: set[tuple[str, str]]) -> bool:
    if not preset_uses:
        return False
    for setting, kind in lookup.uses:
        if kind.severity is Severity.ERROR:
            return False
        name = setting.removeprefix("fields.") if setting.startswith("fields.") else lookup.key
        if (setting, name) not in preset_uses:
            return False
    return True


class FieldCheck:
    """Watches records stream past; `report()` says which of the config's names no record had."""

    def __init__(self, config: CatalogConfig, *, max_names: int = MAX_DISTINCT_NAMES) -> None:
        self._lookups = _config_uses(config)
        self._preset = config.preset
        self._preset_uses = _preset_uses(config)
        watched = set(self._lookups)
        for lookup in self._lookups.values():
            watched |= lookup.alternatives
        self._watched = tuple(sorted(watched))
        self._counts = dict.fromkeys(self._watched, 0)
        self._shapes: dict[tuple[str, ...], int] = {}
        self._names: set[str] = set()
        self._max_names = max_names
        self._capped = False
        self.records = 0

    def observe(self, record: Mapping[str, Any]) -> None:
        """Note one record's top-level keys. Cheap: one tuple of its keys, counted in a dict, for most records."""
        self.records += 1
        shapes = self._shapes
        if len(record) <= MAX_SHAPE_KEYS:
            shape = tuple(record)
            seen = shapes.get(shape)
            if seen is not None:
                shapes[shape] = seen + 1
                return
            if len(shapes) < MAX_SHAPES:
                shapes[shape] = 1
                return
        self._note(record, 1)

    def _note(self, keys: Collection[str], records: int) -> None:
        counts = self._counts
        for name in self._watched:
            if name in keys:
                counts[name] += records
        names = self._names
        # Bounded: the cap plus one record's keys. Past it, only whether some name was left out is noted.
        if len(names) < self._max_names:
            names.update(keys)
        elif not self._capped and not names.issuperset(keys):
            self._capped = True

    def _fold_shapes(self) -> None:
        for shape, records in self._shapes.items():
            self._note(frozenset(shape), records)
        self._shapes.clear()

    def report(self, *, records_read: int | None = None) -> FieldCheckReport:
        """`records_read`: the records the catalog had, if more than were observed (the diff's fast path)."""
        self._fold_shapes()
        not_parsed = max((records_read or 0) - self.records, 0)
        complete = self.records > 0 and not_parsed == 0
        known = self._names - {READER_ERROR_KEY}
        problems = []
        preset_absent = []
        if complete:
            for lookup in self._lookups.values():
                if any(self._counts[name] for name in (lookup.key, *lookup.alternatives)):
                    continue
                if _only_the_presets(lookup, self._preset_uses):
                    preset_absent.append(lookup.key)
                else:
                    problems.append(self._problem(lookup, known))
        problems.sort(key=lambda problem: (problem.severity is not Severity.ERROR,))
        return FieldCheckReport(
            records_checked=self.records,
            records_not_parsed=not_parsed,
            complete=complete,
            distinct_names=len(known),
            names_capped=self._capped,
            field_counts=dict(self._counts),
            problems=problems,
            preset_fields_absent=sorted(preset_absent),
            preset=self._preset,
        )

    @staticmethod
    def _problem(lookup: _Lookup, known: set[str]) -> FieldProblem:
        key = lookup.key
        suggestions = close_names(key, known)
        hint = did_you_mean(suggestions)
        settings = [setting for setting, _ in lookup.uses]
        severity = (
            Severity.ERROR if any(kind.severity is Severity.ERROR for _, kind in lookup.uses) else Severity.WARNING
        )
        if "id_field" in settings:
            if not suggestions:
                listed = ", ".join(repr(name) for name in sorted(known)[:NAMES_LISTED]) or "no fields"
                more = ", ..." if len(known) > NAMES_LISTED else ""
                hint = f" (the records have {listed}{more})"
            message = f"id_field {key!r} is in no record{hint}"
        else:
            direct = [kind.label for setting, kind in lookup.uses if setting in _KINDS]
            readers = [setting for setting in settings if setting not in _KINDS]
            if direct:
                labels = direct if len(direct) == 1 else [", ".join(direct[:-1]), direct[-1]]
                subject = f"{' and '.join(labels)} field {key!r}"
                also = f" (read by {', '.join(readers)})" if readers else ""
            else:
                first, path = readers[0], lookup.paths[readers[0]]
                subject = f"{first} source {key!r}" if path == key else f"{first} source {path!r}: {key!r}"
                also = f" (also read by {', '.join(readers[1:])})" if readers[1:] else ""
            consequences = [kind.consequence for _, kind in lookup.uses if kind.consequence]
            because = f" ({consequences[0]})" if consequences else ""
            message = f"{subject}{also} never appears in the catalog{because}{hint}"
        return FieldProblem(severity=severity, field=key, settings=settings, suggestions=suggestions, message=message)
