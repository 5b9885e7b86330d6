"""`decode: html` on a field: stored HTML entities become characters, before map and type."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdc_sync.core.compose import Composer
from cdc_sync.core.resources import Resource
from cdc_sync.errors import MappingError
from cdc_sync.mapping.loader import parse_mapping
from cdc_sync.mapping.model import ChildSpec, FieldSpec


def compose_product(fields: dict[str, dict[str, object]], row: dict[str, object],
                    children: dict[str, ChildSpec] | None = None,
                    child_rows: dict[str, list[dict[str, object]]] | None = None) -> object:
    specs = {name: FieldSpec.model_validate(spec) for name, spec in fields.items()}
    composer = Composer(Resource.PRODUCTS, specs, children or {}, "UTC")
    return composer.compose("1", row, child_rows or {})


def test_html_entities_in_a_name_are_decoded_once() -> None:
    record = compose_product(
        {"id": {"column": "id"}, "name": {"column": "name", "decode": "html"},
         "price": {"column": "price"}},
        {"id": 1, "name": "Tables &amp; Desks &quot;XL&quot; &#039;24 &amp;amp;", "price": 5})
    assert record.payload["name"] == "Tables & Desks \"XL\" '24 &amp;"  # type: ignore[attr-defined]


def test_without_decode_the_text_is_sent_as_stored() -> None:
    record = compose_product({"id": {"column": "id"}, "name": {"column": "name"},
                              "price": {"column": "price"}},
                             {"id": 1, "name": "A &amp; B", "price": 5})
    assert record.payload["name"] == "A &amp; B"  # type: ignore[attr-defined]


def test_decode_comes_before_map_and_leaves_null_and_numbers_alone() -> None:
    record = compose_product(
        {"id": {"column": "id", "decode": "html"},
         "name": {"column": "name", "decode": "html", "map": {"R&D": "Research"}},
         "price": {"column": "price", "decode": "html"},
         "sku": {"column": "sku", "decode": "html"}},
        {"id": 7, "name": "R&amp;D", "price": 12.5, "sku": None})
    assert record.payload == {"id": "7", "name": "Research", "price": 12.5}  # type: ignore[attr-defined]


def test_decode_works_on_a_child_value() -> None:
    categories = ChildSpec.model_validate({"table": "pc", "parent_key": "product_id",
                                           "value": {"column": "name", "decode": "html"}})
    record = compose_product({"id": {"column": "id"}, "name": {"column": "id"},
                              "price": {"column": "id"}}, {"id": 1},
                             {"categories": categories},
                             {"categories": [{"name": "Tools &amp; Parts"}]})
    assert record.payload["categories"] == ["Tools & Parts"]  # type: ignore[attr-defined]


def test_an_unknown_decoding_is_a_mapping_problem_with_its_line() -> None:
    text = ("version: 1\nproducts:\n  table: p\n  fields:\n    id: id\n"
            "    name: {column: n, decode: xml}\n")
    with pytest.raises(MappingError) as raised:
        parse_mapping(text, Path("m.yaml"))
    assert "m.yaml:6" in str(raised.value)
    assert "html" in str(raised.value)
