"""The code that composes one resource's records, written once per mapping and row shape.

`compose_function` turns a `RecordPlan` (the resource's fields, nested objects, children and
aggregates, as core/compose.py plans them) into one Python function `compose(key, row, kids)
-> SourceRecord` of straight-line code: per field its read (a position or a label), its NULL
rule, its coercion inside its own `try` (a value that cannot be coerced leaves the field out
and adds a problem), then the nested objects (left out when empty) and the children's loops.
A `Layout` says how the rows are read: by label from dicts, or by position from the driver's
tuples. `compose_function(...).code` is the source, for review; see core/codegen.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from cdc_sync.core.codegen import Code
from cdc_sync.core.fieldsteps import FieldPlan, html_text, split_text, template_text
from cdc_sync.core.resources import SourceRecord
from cdc_sync.errors import CoercionError


class ObjectPlan(NamedTuple):
    """An object's fields by payload key, and the nested objects its dotted names build."""

    fields: tuple[tuple[str, FieldPlan], ...]
    nested: tuple[tuple[str, ObjectPlan], ...]


class ChildPlan(NamedTuple):
    """A sent child: a list of values (`value`), a list of objects, or a `single` object."""

    name: str
    kind: Literal["values", "objects", "single"]
    value: FieldPlan | None
    shape: ObjectPlan | None


class RecordPlan(NamedTuple):
    """A resource's record: its object, its sent children, and its aggregate streams with
    each aggregate label's value when the parent has no child rows."""

    shape: ObjectPlan
    children: tuple[ChildPlan, ...]
    aggregates: Mapping[str, Mapping[str, Any]]


Read = Callable[[str], str]
"""A row label -> the expression that reads it."""


class Layout(NamedTuple):
    """How the generated code reaches each value.

    `row`: the parent row's label -> its position (None: the row is a dict, read by label;
    aggregates are then merged into it by `merge`). `children`: per child or aggregate
    stream, its index in `kids` (None: `kids` is a mapping by name) and its rows' label ->
    position (None: dicts, read by label).
    """

    row: Mapping[str, int] | None
    kids: Mapping[str, int] | None
    child_positions: Mapping[str, Mapping[str, int] | None]
    merge: Callable[..., Any] | None = None


ComposeRow = Callable[[str, Any, Any], SourceRecord]


class Composed(NamedTuple):
    function: ComposeRow
    code: str


def compose_function(title: str, plan: RecordPlan, layout: Layout) -> Composed:
    code = Code(title)
    writer = _Writer(code, plan, layout)
    writer.record()
    return Composed(code.compile("compose"), code.source)


class _Writer:
    def __init__(self, code: Code, plan: RecordPlan, layout: Layout) -> None:
        self.code = code
        self.plan = plan
        self.layout = layout
        self.error = code.ref(CoercionError, "CoercionError")

    def record(self) -> None:
        line = self.code.line
        line(0, "def compose(key, row, kids):")
        line(1, "problems = []")
        read = self._parent_reads(line)
        self.object(1, "payload", self.plan.shape, read)
        for child in self.plan.children:
            self.child(1, child)
        record = self.code.ref(SourceRecord, "SourceRecord")
        line(1, f"return {record}(key, payload, tuple(problems))")

    def _parent_reads(self, line: Callable[[int, str], None]) -> Read:
        layout, plan = self.layout, self.plan
        positions = layout.row
        if positions is None:
            if plan.aggregates:  # a dict row: the grouped rows' values merged into it
                merge = self.code.ref(layout.merge, "merge")
                streams = self.code.ref(plan.aggregates, "streams")
                line(1, f"row = {merge}(row, kids, {streams})")
            return lambda label: f"row[{label!r}]"
        by_stream: dict[str, tuple[str, str]] = {}
        for stream, defaults in plan.aggregates.items():
            grouped = self.code.fresh("a")
            line(1, f"{grouped} = {self._rows_of(stream)}")
            line(1, f"{grouped} = {grouped}[0] if {grouped} else None")
            for label in defaults:
                by_stream[label] = (grouped, stream)

        def read(label: str) -> str:
            if label not in by_stream:
                return f"row[{positions[label]!r}]"
            grouped, stream = by_stream[label]
            default = self.code.ref(plan.aggregates[stream][label], "no_rows")
            at = self.layout.child_positions[stream]
            index = label if at is None else at[label]
            return f"({default} if {grouped} is None else {grouped}[{index!r}])"

        return read

    def _rows_of(self, name: str) -> str:
        kids = self.layout.kids
        if kids is None:
            return f"kids.get({name!r}, ())"
        return f"kids[{kids[name]!r}]" if name in kids else "()"

    def _child_reads(self, name: str) -> Read:
        positions = self.layout.child_positions.get(name)
        if positions is None:
            return lambda label: f"r[{label!r}]"
        return lambda label: f"r[{positions[label]!r}]"

    # --- objects and children ---

    def object(self, depth: int, target: str, shape: ObjectPlan, read: Read) -> None:
        line = self.code.line
        line(depth, f"{target} = {{}}")
        for key, field in shape.fields:
            self.field(depth, field, read, _assign(target, key))
        for key, inner in shape.nested:
            nested = self.code.fresh("o")
            self.object(depth, nested, inner, read)
            line(depth, f"if {nested}:  # an object whose fields are all NULL is left out")
            line(depth + 1, f"{target}[{key!r}] = {nested}")

    def child(self, depth: int, child: ChildPlan) -> None:
        line = self.code.line
        rows = self.code.fresh("rows")
        line(depth, f"# child {child.name!r} ({child.kind})")
        line(depth, f"{rows} = {self._rows_of(child.name)}")
        read = self._child_reads(child.name)
        key = repr(child.name)
        if child.kind == "objects" and child.shape is not None:
            items = self.code.fresh("items")
            line(depth, f"{items} = []")
            line(depth, f"for r in {rows}:")
            self.object(depth + 1, "o", child.shape, read)
            line(depth + 1, f"{items}.append(o)")
            line(depth, f"payload[{key}] = {items}")
        elif child.kind == "single" and child.shape is not None:
            line(depth, f"if {rows}:")
            line(depth + 1, f"r = {rows}[0]")
            self.object(depth + 1, "o", child.shape, read)
            line(depth + 1, "if o:")
            line(depth + 2, f"payload[{key}] = o")
        elif child.value is not None:
            values = self.code.fresh("values")
            unique = self.code.ref(unique_values, "unique_values")
            line(depth, f"if not {rows}:")
            line(depth + 1, f"payload[{key}] = []")
            line(depth, "else:")
            line(depth + 1, f"{values} = []")
            line(depth + 1, f"for r in {rows}:")
            self.field(depth + 2, child.value, read, lambda value: [
                f"x = {value}",
                f"if isinstance(x, list): {values}.extend(x)",
                f"else: {values}.append(x)",
            ])
            line(depth + 1, f"payload[{key}] = {unique}({values})")

    # --- one field ---

    def field(self, depth: int, field: FieldPlan, read: Read,
              store: Callable[[str], list[str]]) -> None:
        line = self.code.line
        convert = self.code.ref(field.convert, "convert")
        problem = f"problems.append({field.name + ': '!r} + str(e))"
        if field.plain:
            line(depth, f"# {field.name!r} <- {field.labels[0]!r}")
            line(depth, f"v = {read(field.labels[0])}")
            line(depth, "if v is not None:")
            line(depth + 1, "try:")
            value = f"v if v.__class__ is str else {convert}(v)" if field.text_passes \
                else f"{convert}(v)"
            for text in store(value):
                line(depth + 2, text)
            line(depth + 1, f"except {self.error} as e:")
            line(depth + 2, problem)
            return
        line(depth, f"# {field.name!r} <- {', '.join(map(repr, field.labels)) or 'a const'}")
        line(depth, "try:")
        inner = depth + 1
        line(inner, f"v = {self._value(field, read)}")
        if field.decode:
            line(inner, f"v = {self.code.ref(html_text, 'html_text')}(v)")
        if field.look_up is not None:
            line(inner, "if v is not None:")
            line(inner + 1, f"v = {self.code.ref(field.look_up, 'look_up')}(v)")
        if field.default is not None:
            line(inner, "if v is None:")
            line(inner + 1, f"v = {self.code.ref(field.default, 'default')}")
        else:
            line(inner, "if v is None:")
            for text in (store("[]") if field.listed else ["pass  # left out"]):
                line(inner + 1, text)
            line(inner, "else:")
            inner += 1
        self._coerced(inner, field, convert, store)
        line(depth, f"except {self.error} as e:")
        line(depth + 1, problem)

    def _value(self, field: FieldPlan, read: Read) -> str:
        if field.template is not None:
            fill = self.code.ref(template_text, "template_text")
            template = self.code.ref(field.template, "template")
            values = "".join(f"{read(label)}, " for label in field.labels)
            return f"{fill}({template}, ({values}))"
        if field.labels:
            return read(field.labels[0])
        return self.code.ref(field.const, "const")

    def _coerced(self, depth: int, field: FieldPlan, convert: str,
                 store: Callable[[str], list[str]]) -> None:
        line = self.code.line

        def put(depth: int, value: str) -> None:
            for text in store(value):
                line(depth, text)

        # A list (a list default, a mapped list, an array column) is already split.
        whole = f"[{convert}(i) for i in v]" if field.each else f"{convert}(v)"
        if field.split is not None:
            separator = self.code.ref(field.split, "separator")
            line(depth, "if isinstance(v, (list, tuple)):")
            put(depth + 1, whole)
            line(depth, "else:")
            put(depth + 1, f"[{convert}(p) for p in "
                           f"{self.code.ref(split_text, 'split_text')}(v, {separator})]")
        elif field.each:
            line(depth, "if isinstance(v, (list, tuple)):")
            put(depth + 1, whole)
            line(depth, "else:")
            put(depth + 1, f"{convert}(v)")
        else:
            put(depth, f"{convert}(v)")


def _assign(target: str, key: str) -> Callable[[str], list[str]]:
    return lambda value: [f"{target}[{key!r}] = {value}"]


def unique_values(values: list[Any]) -> list[Any]:
    """A child's values, each once, in order (equal unhashable JSON values too)."""
    try:
        return list(dict.fromkeys(values))
    except TypeError:  # unhashable JSON values: keep the first of equal ones, slowly
        kept: list[Any] = []
        for value in values:
            if value not in kept:
                kept.append(value)
        return kept
