"""How a table is declared: columns with a type, a unit, a doc line and a role.

Roles:

* ``key``: identifies a row (``level``, ``underlying``, ``instrument``, ``as_of``, ``scenario``...);
* ``tag``: a grouping key taken from the positions' tag columns (``desk``, ``book``...). Tags are
  never declared by name: in a table whose spec says ``has_tags``, every string column the spec
  does not declare is a tag. This is the only way the project finds tag columns;
* ``measure``: a number that adds up over positions or groups (greeks, values, P&L);
* ``attr``: everything else (statuses, model names, prices, counts that do not add up).

A :class:`TableSpec` turns the declaration into Arrow schemas with units in the field metadata
(``unit`` and ``doc``), and answers which columns of a concrete table are its keys and tags.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

#: Column roles (see the module docstring).
ROLES: tuple[str, ...] = ("key", "tag", "measure", "attr")

#: Timestamps everywhere: microseconds, UTC.
TIMESTAMP = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Column:
    """One declared column: name, Arrow type, whether an input must have it, unit, doc, role."""

    name: str
    type: pa.DataType
    required: bool = False
    unit: str = ""
    doc: str = ""
    role: str = "attr"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"column {self.name}: role must be one of {ROLES}, got {self.role!r}")

    def field(self) -> pa.Field:
        """The Arrow field, with ``unit`` and ``doc`` metadata."""
        return pa.field(self.name, self.type, metadata={"unit": self.unit, "doc": self.doc})


def key(name: str, type_: pa.DataType = pa.string(), doc: str = "", unit: str = "") -> Column:
    return Column(name, type_, False, unit, doc, "key")


def measure(name: str, unit: str, doc: str, type_: pa.DataType = pa.float64()) -> Column:
    return Column(name, type_, False, unit, doc, "measure")


def attr(name: str, type_: pa.DataType, unit: str = "", doc: str = "") -> Column:
    return Column(name, type_, False, unit, doc, "attr")


def is_string_type(t: pa.DataType) -> bool:
    """string, large_string, string_view, a dictionary of those, or null (an all-null tag)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
            or pa.types.is_null(t))


@dataclass(frozen=True)
class TableSpec:
    """A declared table: its name, its columns in order, and whether tag columns ride along.

    ``tags_after``: the name of the declared column after which tag columns are placed when the
    table is built (e.g. after ``underlying`` in group tables); None puts them last.
    """

    name: str
    columns: tuple[Column, ...]
    has_tags: bool = False
    tags_after: str | None = None
    doc: str = ""
    #: columns a stored copy of the table carries besides its own (the history's ``run_id``):
    #: known, so never taken for tags, but not part of the table a run builds
    stored_columns: tuple[Column, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def by_role(self, role: str) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.role == role)

    def tag_columns(self, table: pa.Table | pa.Schema) -> list[str]:
        """The tag columns of a concrete table of this kind: its string columns this spec does not
        declare, in table order (empty when the spec has no tags)."""
        if not self.has_tags:
            return []
        schema = table.schema if isinstance(table, pa.Table) else table
        declared = set(self.names) | {c.name for c in self.stored_columns}
        return [f.name for f in schema if f.name not in declared and is_string_type(f.type)]

    def group_columns(self, table: pa.Table | pa.Schema) -> list[str]:
        """``level``, ``underlying`` and the tag columns: what identifies a group row
        (:func:`gpuskew.core.groups.group_id`)."""
        return ["level", "underlying", *self.tag_columns(table)]

    def key_columns(self, table: pa.Table | pa.Schema) -> list[str]:
        """Declared key columns present in the table, with the tag columns after ``tags_after``."""
        schema = table.schema if isinstance(table, pa.Table) else table
        keys = [c.name for c in self.columns if c.role == "key" and c.name in schema.names]
        tags = self.tag_columns(schema)
        if self.tags_after in keys:
            i = keys.index(self.tags_after) + 1
            return keys[:i] + tags + keys[i:]
        return keys + tags

    def arrow_schema(self, tags: Sequence[str] = (), columns: Iterable[str] | None = None) -> pa.Schema:
        """The Arrow schema of this table with ``tags`` (strings) placed after ``tags_after``.

        ``columns``: only these declared columns (in declaration order); default all.
        """
        wanted = None if columns is None else set(columns)
        fields: list[pa.Field] = []
        tag_fields = [pa.field(t, pa.string(), metadata={"unit": "", "doc": "tag of the positions"})
                      for t in tags]
        placed = False
        for c in self.columns:
            if wanted is not None and c.name not in wanted:
                continue
            fields.append(c.field())
            if c.name == self.tags_after:
                fields += tag_fields
                placed = True
        if not placed:
            fields += tag_fields
        return pa.schema(fields)

    def empty(self, tags: Sequence[str] = ()) -> pa.Table:
        return self.arrow_schema(tags).empty_table()


__all__ = ["ROLES", "TIMESTAMP", "Column", "TableSpec", "key", "measure", "attr", "is_string_type"]
