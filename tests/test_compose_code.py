"""The composer's generated code composes exactly what its plan says (tests/helpers/interpreted).

Every mapping of the project (the demo's, Chinook's) and randomized mappings of every field
kind (column, expression, template, const, aggregates; map, default, split, decode, nested
objects, list fields, children of values, objects and single objects) compose randomized rows
(NULLs, values that do not coerce, bytes that are no UTF-8...) three ways: the reference
interpretation of the plan with dict rows, the generated code reading dicts, and the generated
code reading the driver's tuples by position. Payloads and problems must be equal.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cdc_sync.core.compose import Composer
from cdc_sync.core.composecode import ChildPlan, ObjectPlan
from cdc_sync.core.resources import Resource
from cdc_sync.mapping.loader import load_mapping
from cdc_sync.mapping.model import ChildSpec, FieldSpec
from helpers.interpreted import interpret

ROOT = Path(__file__).resolve().parent.parent
MAPPINGS = [ROOT / "cdc_sync/demo/mappings.yaml", ROOT / "examples/chinook/mappings.yaml"]

VALUES: list[Any] = [
    None, None, 0, 1, 7, -3, 10**20, True, False, Decimal("10.42"), Decimal("3.00"),
    Decimal("1e400"), 2.5, float("inf"), "", "  x ", "Y", "n", "12.5", "abc", "a,b, ,a",
    "Tom &amp; Jerry", "ALICE@Example.COM ", "2024-05-01T10:00:00", "1700000000", "3",
    b"bytes", b"\xff\xfe", datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59), date(2023, 7, 1), [1, "two"], ["a", "a", "b"],
    {"k": 1}, ("t", 1),
]
ZONE = "Europe/Sofia"
TYPES = [None, "string", "number", "integer", "boolean", "timestamp", "email", "json"]


def _same_three_ways(resource: Resource, fields: dict[str, FieldSpec],
                     children: dict[str, ChildSpec], rng: random.Random) -> None:
    composer = Composer(resource, fields, children, ZONE)
    plan = composer.plan
    labels = [*_labels(plan.shape), "extra"]
    rng.shuffle(labels)
    streams = {stream: list(defaults) for stream, defaults in plan.aggregates.items()}
    child_labels = {child.name: [*_child_labels(child), "extra"] for child in plan.children}
    child_labels.update(streams)
    for labels_of in child_labels.values():
        rng.shuffle(labels_of)
    by_position = Composer(resource, fields, children, ZONE,
                           child_labels=child_labels, labels=labels)
    assert by_position.compose_raw is not None
    for _ in range(60):
        raw = tuple(rng.choice(VALUES) for _ in labels)
        kids = tuple(
            [(*(rng.choice(VALUES) for _ in names), "parent key")
             for _ in range(rng.choice((0, 0, 1, 1, 2, 3)) if name not in streams
                            else rng.choice((0, 1)))]
            for name, names in child_labels.items())
        row = dict(zip(labels, raw, strict=True))
        dicts = {name: [dict(zip(names, r, strict=False)) for r in rows_of]
                 for (name, names), rows_of in zip(child_labels.items(), kids, strict=True)}
        expected = interpret(plan, "k", row, dicts)
        assert composer.compose("k", row, dicts) == expected
        mixed = {name: (rows_of if name in by_position.positional else dicts[name])
                 for (name, _), rows_of in zip(child_labels.items(), kids, strict=True)}
        assert by_position.compose("k", row, mixed) == expected
        assert by_position.compose_raw("k", raw, kids) == expected


def _labels(shape: ObjectPlan) -> list[str]:
    found = [label for _, field in shape.fields for label in field.labels]
    found += [label for _, inner in shape.nested for label in _labels(inner)]
    return list(dict.fromkeys(found))


def _child_labels(child: ChildPlan) -> list[str]:
    if child.value is not None:
        return list(dict.fromkeys(child.value.labels))
    assert child.shape is not None
    return _labels(child.shape)


@pytest.mark.parametrize("path", MAPPINGS, ids=lambda p: p.parent.name)
def test_every_project_mapping_composes_the_same_as_its_plan(path: Path) -> None:
    spec = load_mapping(path).spec
    rng = random.Random(path.name)
    for resource in Resource:
        mapped = getattr(spec, resource.value, None)
        fields = getattr(mapped, "fields", None)
        if not fields:
            continue
        children = dict(getattr(mapped, "children", None) or {})
        _same_three_ways(resource, dict(fields), children, rng)


def _random_field(rng: random.Random, columns: list[str], children: list[str]) -> dict[str, Any]:
    kind = rng.choice(["column"] * 5 + ["expression", "template", "const", "aggregate"])
    spec: dict[str, Any]
    if kind == "column":
        spec = {"column": rng.choice(columns)}
    elif kind == "expression":
        spec = {"expression": "1 + 1"}
    elif kind == "template":
        spec = {"template": f"it's {{{rng.choice(columns)}}}/\"{{{rng.choice(columns)}}}\""}
    elif kind == "const":
        spec = {"const": rng.choice(["fixed", 5, ["a", "b"], True])}
    else:
        function = rng.choice(["sum", "count", "min", "max"])
        spec = {function: f"{rng.choice(children)}.{rng.choice(columns)}"}
    spec["type"] = rng.choice(TYPES)
    for option, value in [("map", {"1": "one", "Y": None, "abc": ["l", "m"]}),
                          ("default", rng.choice(["dflt", 0, [], ["d"]])),
                          ("split", rng.choice([",", "|"])), ("decode", "html")]:
        if rng.random() < 0.2:
            spec[option] = value
    return {k: v for k, v in spec.items() if v is not None}


@pytest.mark.parametrize("seed", range(40))
def test_random_mappings_compose_the_same_as_their_plan(seed: int) -> None:
    rng = random.Random(seed)
    columns = ["c1", "c2", "t.c3", "c'4", "c\n5"]
    names = ["id", "createdAt", "email", "amount", "tags", "coupons", "categories",
             "billing.city", "billing.phone", "a.b.c", "x", "price"]
    stream_children = ["pay", "lines"]
    fields = {name: FieldSpec.model_validate(_random_field(rng, columns, stream_children))
              for name in rng.sample(names, rng.randint(1, len(names)))}
    children = {}
    for name in rng.sample(["products", "coupons", "single", "vals"], rng.randint(0, 4)):
        shape = rng.choice(["value", "fields", "single"])
        inner = {f"{n}": _random_field(rng, columns, stream_children) for n in
                 rng.sample(["productId", "quantity", "o.p", "o.q", "z"], rng.randint(1, 4))}
        for spec in inner.values():  # aggregates are a parent's fields only
            for function in ("sum", "count", "min", "max"):
                if spec.pop(function, None) is not None:
                    spec["column"] = rng.choice(columns)
        if shape == "value":
            children[name] = ChildSpec.model_validate(
                {"table": "t", "parent_key": "k", "value": next(iter(inner.values()))})
        else:
            children[name] = ChildSpec.model_validate(
                {"table": "t", "parent_key": "k", "fields": inner, "single": shape == "single"})
    for name in stream_children:
        children[name] = ChildSpec.model_validate({"table": "t", "parent_key": "k"})
    _same_three_ways(rng.choice(list(Resource)), fields, children, rng)


def test_mapping_text_is_never_code() -> None:
    # Labels and keys are repr()'d, everything else is a name in the code's namespace.
    tricky = "x'] + __import__('os') + row['"  # no dot: a dot nests the field
    fields = {
        tricky: FieldSpec.model_validate({"column": tricky}),
        "name": FieldSpec.model_validate({"template": "{" + "a\nb" + "} \"') #",
                                          "default": "'); raise SystemExit('"}),
        "const": FieldSpec.model_validate({"const": "__import__('sys')"}),
    }
    composer = Composer(Resource.CATEGORIES, fields, {}, "UTC",
                        child_labels={}, labels=[tricky, "a\nb"])
    record = composer.compose("k", {tricky: 5, "a\nb": None}, {})
    assert record.payload == {tricky: "5", "name": "'); raise SystemExit('",
                              "const": "__import__('sys')"}
    assert composer.compose_raw is not None
    assert composer.compose_raw("k", (5, "v"), ()).payload["name"] == "v \"') #"
    for code in (composer.code, composer.raw_code or ""):  # values, text: names in the code
        assert "__import__('sys')" not in code
        assert "SystemExit" not in code
        assert "#\"" not in code


def test_a_label_missing_from_the_rows_reads_dicts_as_before() -> None:
    fields = {"id": FieldSpec.model_validate({"column": "id"}),
              "name": FieldSpec.model_validate({"column": "name"})}
    composer = Composer(Resource.CATEGORIES, fields, {}, "UTC", child_labels={}, labels=["id"])
    assert composer.compose_raw is None
    assert composer.compose("k", {"id": 1, "name": "n"}, {}).payload == {"id": "1", "name": "n"}


def test_the_generated_code_reads_as_the_mapping() -> None:
    fields = {"id": FieldSpec.model_validate({"column": "id"}),
              "billing.city": FieldSpec.model_validate({"column": "city"})}
    composer = Composer(Resource.ORDERS, fields, {}, "UTC", child_labels={},
                        labels=["city", "id"])
    assert composer.raw_code is not None
    assert "# 'billing.city' <- 'city'" in composer.raw_code
    assert "v = row[1]" in composer.raw_code  # id, by its position
    assert "for " not in composer.raw_code  # no loop over fields: one line per field
