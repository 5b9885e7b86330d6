"""Loading mappings.yaml: every problem reported at once with its line, fingerprints, the schema."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cdc_sync.errors import MappingError, Problem
from cdc_sync.mapping.loader import LoadedMapping, load_mapping, parse_mapping
from cdc_sync.mapping.model import DeleteAction
from cdc_sync.mapping.schema import SCHEMA_PATH, mapping_json_schema, write
from helpers.problems import loader_problems

FILE = Path("mappings.yaml")

SHOP = """\
# yaml-language-server: $schema=./mapping.schema.json
version: 1
source_timezone: Europe/Sofia
customers:
  table: customers
  fields:
    email: email
    createdAt: {column: created_at}
    subscribed: {column: newsletter, map: {Y: true, N: false}, default: false}
    tags: {column: tag_list, split: ","}
categories:
  table: categories
  fields:
    id: id
    name: title
    url: {template: "https://shop.test/c/{slug}"}
products:
  table: products
  where: deleted_at IS NULL
  cursor: updated_at
  fields:
    id: id
    name: name
    price: price
  children:
    categories:
      table: product_categories
      parent_key: product_id
      value: category_id
    options:
      table: variants
      parent_key: product_id
      fields: {id: id, name: title, price: price}
orders:
  table: orders
  key: [shop_id, number]
  joins:
    - table: addresses
      alias: a
      on: {billing_address_id: id}
  fields:
    id: {template: "{shop_id}-{number}"}
    email: email
    createdAt: {column: created_epoch, epoch: s}
    amount: total
    status: {column: state, map: {1: pending, 2: paid, yes: done}, default: other}
    billing.city: a.city
  children:
    products:
      table: order_lines
      parent_key: [shop_id, order_number]
      fields: {productId: product_id, quantity: qty}
  on_delete: {action: status, status: cancelled}
"""


def only_problem(text: str) -> Problem:
    problems = loader_problems(text)
    assert len(problems) == 1, problems
    return problems[0]


# --- a valid mapping ---


def test_shop_mapping_loads_with_shorthands_and_yaml_12_booleans() -> None:
    loaded = parse_mapping(SHOP, FILE)
    spec = loaded.spec
    assert spec.orders is not None
    assert spec.orders.key == ["shop_id", "number"]
    # `on:` and `yes` are text, not YAML 1.1 booleans.
    assert spec.orders.joins[0].on == {"billing_address_id": "id"}
    assert spec.orders.fields["status"].map == {"1": "pending", "2": "paid", "yes": "done"}
    assert spec.orders.on_delete.action is DeleteAction.STATUS
    assert spec.customers is not None
    assert spec.customers.fields["email"].column == "email"


def test_where_names_the_line_and_falls_back_to_the_nearest_parent() -> None:
    loaded = parse_mapping(SHOP, FILE)
    assert loaded.where("orders", "fields", "status") == "mappings.yaml:46 (orders.fields.status)"
    assert loaded.where("orders", "joins", 0, "on") == "mappings.yaml:40 (orders.joins[0].on)"
    assert loaded.where("orders", "fields", "nope") == "mappings.yaml:41 (orders.fields.nope)"
    assert loaded.where() == "mappings.yaml:1"


def test_load_mapping_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mappings.yaml"
    path.write_text(SHOP, encoding="utf-8")
    loaded = load_mapping(path)
    assert loaded.path == path
    assert loaded.fingerprint == parse_mapping(SHOP, FILE).fingerprint


# --- fingerprints ---


def test_fingerprint_ignores_comments_whitespace_and_style() -> None:
    restyled = SHOP.replace(
        "    name: name\n", "    # the product title\n    name:   name\n\n"
    ).replace(
        "fields: {productId: product_id, quantity: qty}",
        "fields:\n        productId: product_id\n        quantity: qty",
    )
    assert restyled != SHOP
    assert parse_mapping(restyled, FILE).fingerprint == parse_mapping(SHOP, FILE).fingerprint


def test_fingerprint_changes_with_a_real_edit_and_says_which_resource() -> None:
    before = parse_mapping(SHOP, FILE)
    after = parse_mapping(SHOP.replace("    name: name\n", "    name: title\n"), FILE)
    assert after.fingerprint != before.fingerprint
    assert after.resource_fingerprint("products") != before.resource_fingerprint("products")
    assert after.resource_fingerprint("orders") == before.resource_fingerprint("orders")


def test_resource_fingerprint_follows_the_source_time_zone() -> None:
    before = parse_mapping(SHOP, FILE)
    after = parse_mapping(SHOP.replace("Europe/Sofia", "UTC"), FILE)
    assert after.resource_fingerprint("orders") != before.resource_fingerprint("orders")


def test_resource_fingerprint_of_an_unknown_name_is_refused() -> None:
    with pytest.raises(KeyError):
        parse_mapping(SHOP, FILE).resource_fingerprint("sync")


# --- file and syntax problems ---


def test_missing_file_says_to_create_it_or_set_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(MappingError) as raised:
        load_mapping(path)
    (problem,) = raised.value.problems
    assert problem.where == str(path)
    assert "does not exist" in problem.what
    assert "CDC_SYNC_MAPPINGS" in problem.fix


def test_file_that_is_not_utf8_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "mappings.yaml"
    path.write_bytes(b"version: 1\nsource_timezone: \xff\n")
    with pytest.raises(MappingError, match="cannot be read"):
        load_mapping(path)


def test_malformed_yaml_names_line_and_column() -> None:
    problem = only_problem("version: 1\ncustomers:\n  table: [customers\n  fields: {}\n")
    assert problem.where == "mappings.yaml:4"
    assert problem.what.startswith("malformed YAML at column 9:")


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file_is_reported(text: str) -> None:
    assert only_problem(text) == Problem(
        "mappings.yaml:1",
        "the mapping file is empty",
        "start from the examples in docs/mappings.md (version: 1, then customers:, orders:, ...)",
    )


def test_top_level_must_be_a_mapping() -> None:
    assert "not a list" in only_problem("- customers\n- orders\n").what


def test_duplicate_resource_is_reported_at_its_second_line() -> None:
    text = "orders:\n  table: a\n  fields: {id: id}\norders:\n  table: b\n  fields: {id: id}\n"
    problem = only_problem(text)
    assert problem.where == "mappings.yaml:4 (orders)"
    assert problem.what.startswith("duplicate key 'orders' (first given on line 1)")


def test_duplicate_field_is_reported() -> None:
    text = "customers:\n  table: c\n  fields:\n    email: email\n    email: mail\n"
    assert only_problem(text).where == "mappings.yaml:5 (customers.fields.email)"


# --- model problems ---


def test_unknown_key_suggests_the_closest_allowed_key() -> None:
    text = "orders:\n  table: o\n  fields:\n    id: {colum: id}\n"
    problem = only_problem(text)
    assert problem.where == "mappings.yaml:4 (orders.fields.id.colum)"
    assert problem.what == "unknown key 'colum'; did you mean 'column'?"


def test_misspelt_resource_suggests_the_resource() -> None:
    problem = only_problem("order:\n  table: o\n  fields: {id: id}\n")
    assert problem.where == "mappings.yaml:1 (order)"
    assert "did you mean 'orders'?" in problem.what


def test_wrong_type_names_what_was_expected() -> None:
    problem = only_problem("orders:\n  table: o\n  enabled: sometimes\n  fields: {id: id}\n")
    assert problem.where == "mappings.yaml:3 (orders.enabled)"
    assert problem.what == "enabled must be true or false, not 'sometimes'"


def test_bad_enum_value_suggests_the_closest_choice() -> None:
    problem = only_problem("orders:\n  table: o\n  fields:\n    amount: {column: t, type: numbr}\n")
    assert problem.where == "mappings.yaml:4 (orders.fields.amount.type)"
    assert problem.fix.startswith("did you mean 'number'?")


def test_missing_required_key_points_at_its_parent() -> None:
    problem = only_problem("version: 1\norders:\n  table: o\n")
    assert problem.where == "mappings.yaml:2 (orders.fields)"
    assert problem.what == "required key 'fields' is missing"


def test_model_validator_message_is_passed_on() -> None:
    problem = only_problem("orders:\n  table: o\n  query: SELECT 1\n  fields: {id: id}\n")
    assert problem.where == "mappings.yaml:1 (orders)"
    assert problem.what == "give exactly one of table or query"


def test_out_of_range_option_names_the_bound() -> None:
    problem = only_problem("sync:\n  delete_guard: 3\n")
    assert problem.what == "delete_guard must be at most 1.0, not 3"


def test_bad_template_placeholder_is_reported() -> None:
    problem = only_problem('products:\n  table: p\n  fields:\n    url: {template: "x/{slug!r}"}\n')
    assert problem.where == "mappings.yaml:4 (products.fields.url.template)"
    assert problem.what.startswith("bad template 'x/{slug!r}'")


def test_unknown_time_zone_suggests_a_real_one() -> None:
    problem = only_problem("source_timezone: Europe/Sofa\n")
    assert problem.where == "mappings.yaml:1 (source_timezone)"
    assert problem.what == "unknown time zone 'Europe/Sofa'"
    assert problem.fix.startswith("did you mean 'Europe/Sofia'?")


def test_map_without_default_is_fine() -> None:
    text = "orders:\n  table: o\n  fields:\n    status: {column: s, map: {1: paid}}\n"
    spec = parse_mapping(text, FILE).spec
    assert spec.orders is not None
    assert spec.orders.fields["status"].default is None


def test_field_and_child_filling_the_same_metrilo_field_clash() -> None:
    text = """\
customers:
  table: c
  fields: {email: email, tags: labels}
  children:
    tags: {table: customer_tags, parent_key: customer_id, value: tag}
"""
    problem = only_problem(text)
    assert problem.where == "mappings.yaml:5 (customers.children.tags)"
    assert "both by a field and by a child" in problem.what


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = """\
source_timezone: Nowhere/City
customers:
  table: c
  fields:
    email: {column: email, typ: email}
    url: {template: "{a:>2}"}
orders:
  fields: {id: id}
  children:
    products:
      table: lines
      parent_key: order_id
      fields: {quantity: {column: q, timezone: Mars/Base}}
categories:
  table: c2
  fields: {id: id, id: code}
"""
    problems = loader_problems(text)
    assert [p.where for p in problems] == [
        "mappings.yaml:1 (source_timezone)",
        "mappings.yaml:5 (customers.fields.email.typ)",
        "mappings.yaml:6 (customers.fields.url.template)",
        "mappings.yaml:7 (orders)",
        "mappings.yaml:13 (orders.children.products.fields.quantity.timezone)",
        "mappings.yaml:16 (categories.fields.id)",
    ]
    assert "give exactly one of table or query" in problems[3].what
    assert problems[5].what.startswith("duplicate key 'id'")


# --- docs ---

DOCS = Path(__file__).parent.parent / "docs" / "mappings.md"


def full_examples() -> list[str]:
    blocks = DOCS.read_text(encoding="utf-8").split("```yaml\n")[1:]
    texts = [block.split("```", 1)[0] for block in blocks]
    return [text for text in texts if "\nsource_timezone:" in f"\n{text}"]


def test_docs_hold_three_full_examples() -> None:
    assert len(full_examples()) == 3


@pytest.mark.parametrize("index", range(3))
def test_full_examples_in_the_docs_load(index: int) -> None:
    parse_mapping(full_examples()[index], Path("docs/mappings.md"))


# --- JSON Schema ---


def test_committed_schema_matches_the_models() -> None:
    buffer = io.StringIO()
    write(buffer)
    assert SCHEMA_PATH.read_text(encoding="utf-8") == buffer.getvalue(), (
        "regenerate: python -m cdc_sync.mapping.schema > cdc_sync/mapping/mapping.schema.json"
    )


def test_schema_has_title_dialect_and_descriptions() -> None:
    schema = mapping_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "cdc-sync mappings.yaml"
    field = schema["$defs"]["FieldSpec"]["properties"]["expression"]
    assert "Raw SQL" in field["description"]


def test_shop_mapping_validates_against_the_schema() -> None:
    # Read as an editor does (YAML 1.2-like: keys are text), then check with the schema.
    data = yaml.safe_load(SHOP.replace(" on:", " 'on':"))
    data = json.loads(json.dumps(data, default=str))
    assert schema_errors(mapping_json_schema(), data) == []


def test_schema_rejects_what_the_models_reject() -> None:
    data = {"orders": {"table": "o", "fields": {"id": {"colum": "id"}}, "key": 5}}
    errors = schema_errors(mapping_json_schema(), data)
    assert "orders.fields.id: unknown key colum" in errors
    assert any(error.startswith("orders.key:") for error in errors)


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """A small JSON Schema checker for the keywords pydantic emits (no extra dependency)."""
    return list(_check(schema, schema, value, ""))


def _check(root: dict[str, Any], schema: dict[str, Any], value: Any, at: str) -> Any:
    if "$ref" in schema:
        yield from _check(root, root["$defs"][schema["$ref"].rsplit("/", 1)[-1]], value, at)
        return
    if "anyOf" in schema:
        failures = [list(_check(root, option, value, at)) for option in schema["anyOf"]]
        if all(failures):
            # Say why the one form of the value's own type failed (not "not a string").
            relevant = [f for f in failures if not f[0].startswith(f"{at}: not ")]
            yield from relevant[0] if len(relevant) == 1 else [f"{at}: matches no form"]
        return
    types: dict[str, Any] = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "object": dict, "array": list, "null": type(None)}  # fmt: skip
    kind = schema.get("type")
    if kind is not None and not isinstance(value, types[kind]):
        yield f"{at}: not {kind}"
        return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{at}: not one of {schema['enum']}"
    if "const" in schema and value != schema["const"]:
        yield f"{at}: not {schema['const']}"
    if "minimum" in schema and value < schema["minimum"]:
        yield f"{at}: below minimum"
    if "maximum" in schema and value > schema["maximum"]:
        yield f"{at}: above maximum"
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            yield from _check(root, schema["items"], item, f"{at}[{index}]")
    if isinstance(value, dict):
        yield from _check_object(root, schema, value, at)


def _check_object(
    root: dict[str, Any], schema: dict[str, Any], value: dict[str, Any], at: str
) -> Any:
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name in schema.get("required", []):
        if name not in value:
            yield f"{at}: missing {name}"
    for name, item in value.items():
        where = f"{at}.{name}" if at else name
        if name in properties:
            yield from _check(root, properties[name], item, where)
        elif extra is False:
            yield f"{at}: unknown key {name}"
        elif isinstance(extra, dict):
            yield from _check(root, extra, item, where)


def test_loaded_mapping_is_frozen() -> None:
    loaded = parse_mapping(SHOP, FILE)
    assert isinstance(loaded, LoadedMapping)
    with pytest.raises(AttributeError):
        loaded.fingerprint = "x"  # type: ignore[misc]
