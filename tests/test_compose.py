"""Composing Metrilo records from raw driver values: every field kind and coercion."""

from __future__ import annotations

import calendar
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cdc_sync.core.compose import CoercionError, Composer, coerce, default_coercion
from cdc_sync.core.resources import Resource, SourceRecord
from cdc_sync.errors import MappingError
from cdc_sync.mapping.model import ChildSpec, Coercion, FieldSpec

SOFIA = ZoneInfo("Europe/Sofia")


def utc_ms(year: int, month: int, day: int, hour: int = 0) -> int:
    """Milliseconds since the epoch of a UTC wall time, computed independently of compose."""
    return calendar.timegm((year, month, day, hour, 0, 0, 0, 0, 0)) * 1000


def field(**spec: Any) -> FieldSpec:
    return FieldSpec.model_validate(spec)


def child(**spec: Any) -> ChildSpec:
    return ChildSpec.model_validate(spec)


def compose(
    resource: Resource,
    fields: Mapping[str, FieldSpec],
    row: Mapping[str, Any],
    children: Mapping[str, ChildSpec] | None = None,
    child_rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    source_timezone: str = "UTC",
) -> SourceRecord:
    composer = Composer(resource, fields, children or {}, source_timezone)
    record = composer.compose("k1", row, child_rows or {})
    # The same rows as the driver gives them (tuples, the parent key last): children of plain
    # columns are read by position, the others as dicts; the record must be the same.
    labels = {name: list(dict.fromkeys(k for r in rows for k in r))
              for name, rows in (child_rows or {}).items()}
    by_position = Composer(resource, fields, children or {}, source_timezone,
                           child_labels=labels)
    tuples = {
        name: [(*(r.get(label) for label in labels[name]), "parent key") for r in rows]
        if name in by_position.positional else rows
        for name, rows in (child_rows or {}).items()
    }
    assert by_position.compose("k1", row, tuples) == record
    return record


def one(value: Any, coercion: Coercion, tz: Any = UTC, **spec: Any) -> Any:
    return coerce(value, coercion, field(column="c", **spec), tz)


# --- default types ---


@pytest.mark.parametrize(
    ("resource", "name", "expected"),
    [
        (Resource.CUSTOMERS, "email", Coercion.EMAIL),
        (Resource.CUSTOMERS, "createdAt", Coercion.TIMESTAMP),
        (Resource.CUSTOMERS, "subscribed", Coercion.BOOLEAN),
        (Resource.CUSTOMERS, "firstName", Coercion.STRING),
        (Resource.GUEST_CUSTOMERS, "createdAt", Coercion.TIMESTAMP),
        (Resource.PRODUCTS, "price", Coercion.NUMBER),
        (Resource.PRODUCTS, "options.price", Coercion.NUMBER),
        (Resource.PRODUCTS, "id", Coercion.STRING),
        (Resource.DELETED_PRODUCTS, "price", Coercion.NUMBER),
        (Resource.ORDERS, "createdAt", Coercion.TIMESTAMP),
        (Resource.ORDERS, "amount", Coercion.NUMBER),
        (Resource.ORDERS, "products.quantity", Coercion.NUMBER),
        (Resource.ORDERS, "email", Coercion.EMAIL),
        (Resource.ORDERS, "billing.city", Coercion.STRING),
        (Resource.CATEGORIES, "name", Coercion.STRING),
    ],
)
def test_default_coercion_is_the_metrilo_fields_own_type(
    resource: Resource, name: str, expected: Coercion
) -> None:
    assert default_coercion(resource, name) is expected


# --- coercions ---


def test_decimal_price_becomes_the_exact_float() -> None:
    assert one(Decimal("10.42"), Coercion.NUMBER) == 10.42
    assert repr(one(Decimal("10.42"), Coercion.NUMBER)) == "10.42"


def test_integral_numbers_become_ints_whatever_the_driver_returns() -> None:
    assert one(Decimal("10.00"), Coercion.NUMBER) == 10
    assert type(one(Decimal("10.00"), Coercion.NUMBER)) is int
    assert type(one(10.0, Coercion.NUMBER)) is int
    assert one("  3.5 ", Coercion.NUMBER) == 3.5


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN"), "Infinity", "abc"])
def test_non_finite_or_non_numeric_values_are_not_numbers(value: Any) -> None:
    with pytest.raises(CoercionError, match="not a"):
        one(value, Coercion.NUMBER)


def test_integer_accepts_whole_values_and_rejects_fractions() -> None:
    assert one(Decimal("7.0"), Coercion.INTEGER) == 7
    assert one("42", Coercion.INTEGER) == 42
    assert one(True, Coercion.INTEGER) == 1
    with pytest.raises(CoercionError, match="not a whole number"):
        one(7.5, Coercion.INTEGER)


def test_string_has_no_float_artefacts_and_decodes_bytes() -> None:
    assert one(12.0, Coercion.STRING) == "12"
    assert one(Decimal("12.50"), Coercion.STRING) == "12.5"
    assert one(Decimal("1200"), Coercion.STRING) == "1200"
    assert one(17, Coercion.STRING) == "17"
    assert one("Zoë".encode(), Coercion.STRING) == "Zoë"
    assert one(date(2024, 1, 5), Coercion.STRING) == "2024-01-05"


def test_bytes_that_are_not_utf8_are_a_problem() -> None:
    with pytest.raises(CoercionError, match="not valid UTF-8"):
        one(b"\xff\xfe", Coercion.STRING)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (0, False),
        (True, True),
        ("Y", True),
        ("N", False),
        ("y", True),
        ("t", True),
        ("F", False),
        ("yes", True),
        ("No", False),
        ("TRUE", True),
        ("false", False),
        (Decimal("1"), True),
        (b"\x01", True),
        (b"\x00", False),
    ],
)
def test_boolean_accepts_the_usual_flag_spellings(value: Any, expected: bool) -> None:
    assert one(value, Coercion.BOOLEAN) is expected


def test_boolean_rejects_anything_else_with_the_accepted_spellings() -> None:
    with pytest.raises(CoercionError) as raised:
        one("Q", Coercion.BOOLEAN)
    assert str(raised.value) == (
        "value 'Q' is not a boolean (accepted: 1/0, true/false, Y/N, t/f, yes/no)"
    )
    with pytest.raises(CoercionError):
        one(2, Coercion.BOOLEAN)


def test_email_is_trimmed_and_lowercased() -> None:
    assert one("  Ann@Example.COM ", Coercion.EMAIL) == "ann@example.com"


def test_json_passes_values_through() -> None:
    assert one({"a": [1, 2]}, Coercion.JSON) == {"a": [1, 2]}


def test_naive_datetime_is_read_in_the_source_time_zone() -> None:
    # July: Sofia is UTC+3, so 12:00 local is 09:00 UTC.
    assert one(datetime(2024, 7, 1, 12, 0), Coercion.TIMESTAMP, SOFIA) == utc_ms(2024, 7, 1, 9)
    # January: UTC+2.
    assert one(datetime(2024, 1, 1, 12, 0), Coercion.TIMESTAMP, SOFIA) == utc_ms(2024, 1, 1, 10)


def test_field_time_zone_overrides_the_source_time_zone() -> None:
    value = datetime(2024, 7, 1, 12, 0)
    assert one(value, Coercion.TIMESTAMP, UTC, timezone="Europe/Sofia") == utc_ms(2024, 7, 1, 9)


def test_date_is_midnight_in_the_source_time_zone() -> None:
    assert one(date(2024, 7, 1), Coercion.TIMESTAMP, SOFIA) == utc_ms(2024, 6, 30, 21)


def test_aware_datetime_keeps_its_own_offset() -> None:
    aware = datetime(2024, 7, 1, 12, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=-5)))
    assert one(aware, Coercion.TIMESTAMP, SOFIA) == utc_ms(2024, 7, 1, 17) + 250


def test_epoch_seconds_and_milliseconds() -> None:
    assert one(1_700_000_000, Coercion.TIMESTAMP) == 1_700_000_000_000
    assert one(1_700_000_000_123, Coercion.TIMESTAMP) == 1_700_000_000_123
    assert one(Decimal("1700000000.5"), Coercion.TIMESTAMP) == 1_700_000_000_500
    assert one("1700000000", Coercion.TIMESTAMP) == 1_700_000_000_000
    # An explicit unit beats the size guess.
    assert one(1_000, Coercion.TIMESTAMP, epoch="ms") == 1_000
    assert one(1_000, Coercion.TIMESTAMP, epoch="s") == 1_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-07-01 12:00:00", utc_ms(2024, 7, 1, 9)),  # SQLite's naive text: Sofia
        ("2024-07-01T12:00:00Z", utc_ms(2024, 7, 1, 12)),
        ("2024-07-01T12:00:00+02:00", utc_ms(2024, 7, 1, 10)),
        ("2024-07-01", utc_ms(2024, 6, 30, 21)),
        ("2024-07-01 12:00:00.123", utc_ms(2024, 7, 1, 9) + 123),
    ],
)
def test_iso_8601_text_is_parsed(text: str, expected: int) -> None:
    assert one(text, Coercion.TIMESTAMP, SOFIA) == expected


@pytest.mark.parametrize("value", ["0000-00-00 00:00:00", "yesterday", True, float("nan")])
def test_unparseable_timestamps_are_a_problem(value: Any) -> None:
    with pytest.raises(CoercionError, match="not a"):
        one(value, Coercion.TIMESTAMP)


# --- field kinds ---


def test_column_expression_template_and_const_fields() -> None:
    record = compose(
        Resource.PRODUCTS,
        {
            "id": field(column="id"),
            "name": field(expression="UPPER(name)"),
            "url": field(template="https://shop.test/p/{slug}/{id}"),
            "sku": field(const="fixed"),
        },
        {"id": 7, "slug": "blue-mug", "expr:name": "BLUE MUG"},
    )
    assert record == SourceRecord(
        "k1",
        {"id": "7", "name": "BLUE MUG", "url": "https://shop.test/p/blue-mug/7", "sku": "fixed"},
    )


def test_template_with_a_null_placeholder_is_null() -> None:
    record = compose(
        Resource.PRODUCTS,
        {"url": field(template="https://x/{slug}"), "imageUrl": field(template="https://x/{a}")},
        {"slug": None, "a": "pic.png"},
    )
    assert record.payload == {"imageUrl": "https://x/pic.png"}


def test_null_is_left_out_unless_a_default_is_given() -> None:
    record = compose(
        Resource.CUSTOMERS,
        {"firstName": field(column="first"), "lastName": field(column="last", default="-")},
        {"first": None, "last": None},
    )
    assert record.payload == {"lastName": "-"}
    assert record.problems == ()


def test_map_finds_integral_decimals_by_their_int_text() -> None:
    status = field(column="status_id", map={1: "pending", 2: "paid"})
    record = compose(Resource.ORDERS, {"status": status}, {"status_id": Decimal("1.00")})
    assert record.payload == {"status": "pending"}


def test_map_of_y_n_flags_to_booleans() -> None:
    flag = field(column="optin", map={"Y": True, "N": False})
    record = compose(Resource.CUSTOMERS, {"subscribed": flag}, {"optin": "N"})
    assert record.payload == {"subscribed": False}


def test_value_missing_from_a_map_without_default_is_a_problem() -> None:
    status = field(column="state", map={"wc-completed": "completed", "wc-pending": "pending"})
    record = compose(
        Resource.ORDERS,
        {"status": status, "id": field(column="id")},
        {
            "state": "wc-refunded",
            "id": 5,
        },
    )
    assert record.payload == {"id": "5"}
    assert record.problems == (
        "status: value 'wc-refunded' is not in map (known: wc-completed, wc-pending); "
        "add it or set default:",
    )


def test_value_missing_from_a_map_with_default_takes_the_default() -> None:
    status = field(column="state", map={"wc-completed": "completed"}, default="other")
    record = compose(Resource.ORDERS, {"status": status}, {"state": "wc-on-hold"})
    assert record.payload == {"status": "other"}


def test_split_gives_trimmed_unique_non_empty_strings_in_order() -> None:
    tags = field(column="tag_list", split=",")
    record = compose(Resource.CUSTOMERS, {"tags": tags}, {"tag_list": " vip, ,new,vip , b2b,"})
    assert record.payload == {"tags": ["vip", "new", "b2b"]}


def test_dotted_names_build_nested_objects_and_empty_ones_are_left_out() -> None:
    fields = {
        "billing.city": field(column="a.city"),
        "billing.countryCode": field(column="a.country"),
        "billing.phone": field(column="a.phone"),
    }
    full = compose(Resource.ORDERS, fields, {"a.city": "Sofia", "a.country": "BG", "a.phone": None})
    assert full.payload == {"billing": {"city": "Sofia", "countryCode": "BG"}}
    empty = compose(Resource.ORDERS, fields, {"a.city": None, "a.country": None, "a.phone": None})
    assert empty.payload == {}


def test_failed_coercion_becomes_a_problem_while_other_fields_survive() -> None:
    record = compose(
        Resource.ORDERS,
        {
            "id": field(column="id"),
            "amount": field(column="total"),
            "createdAt": field(column="created"),
        },
        {"id": 9, "total": "n/a", "created": datetime(2024, 1, 1)},
    )
    assert record.payload == {"id": "9", "createdAt": utc_ms(2024, 1, 1, 0)}
    assert record.problems == ("amount: value 'n/a' is not a number",)


# --- children ---


def test_value_child_is_a_list_of_unique_coerced_scalars() -> None:
    categories = child(table="product_categories", parent_key="product_id", value="category_id")
    record = compose(
        Resource.PRODUCTS,
        {"id": field(column="id")},
        {"id": 1},
        {"categories": categories},
        {
            "categories": [
                {"category_id": 3},
                {"category_id": None},
                {"category_id": 4},
                {"category_id": 3},
            ]
        },
    )
    assert record.payload == {"id": "1", "categories": ["3", "4"]}


def test_value_child_with_split_flattens_and_child_without_rows_is_empty() -> None:
    tags = child(
        table="customer_tags", parent_key="customer_id", value={"column": "t", "split": ";"}
    )
    fields = {"email": field(column="email")}
    record = compose(
        Resource.CUSTOMERS,
        fields,
        {"email": "A@x.io"},
        {"tags": tags},
        {"tags": [{"t": "a;b"}, {"t": "b;c"}]},
    )
    assert record.payload == {"email": "a@x.io", "tags": ["a", "b", "c"]}
    no_rows = compose(Resource.CUSTOMERS, fields, {"email": "a@x.io"}, {"tags": tags}, {})
    assert no_rows.payload == {"email": "a@x.io", "tags": []}


def test_fields_child_is_a_list_of_objects_with_child_default_types() -> None:
    lines = child(
        table="order_lines",
        parent_key="order_id",
        fields={"productId": "product_id", "quantity": "qty", "note": {"expression": "1+1"}},
    )
    record = compose(
        Resource.ORDERS,
        {"id": field(column="id")},
        {"id": 1},
        {"products": lines},
        {
            "products": [
                {"product_id": 10, "qty": Decimal("2"), "expr:note": 2},
                {"product_id": 11, "qty": "x", "expr:note": None},
            ]
        },
    )
    assert record.payload == {
        "id": "1",
        "products": [{"productId": "10", "quantity": 2, "note": "2"}, {"productId": "11"}],
    }
    assert record.problems == ("products.quantity: value 'x' is not a number",)


def test_single_child_is_the_first_row_as_one_object_or_left_out() -> None:
    billing = child(
        table="addresses",
        parent_key="order_id",
        single=True,
        fields={"city": "city", "countryCode": "country"},
        order_by="id",
    )
    with_rows = compose(
        Resource.ORDERS,
        {},
        {},
        {"billing": billing},
        {"billing": [{"city": "Varna", "country": "BG"}, {"city": "Ruse", "country": "BG"}]},
    )
    assert with_rows.payload == {"billing": {"city": "Varna", "countryCode": "BG"}}
    without = compose(Resource.ORDERS, {}, {}, {"billing": billing}, {"billing": []})
    assert without.payload == {}


def test_children_whose_labels_are_known_are_read_from_tuples_by_position() -> None:
    lines = child(table="order_lines", parent_key="order_id",
                  fields={"productId": "product_id", "quantity": "qty"})
    noted = child(table="order_notes", parent_key="order_id",
                  fields={"text": {"template": "{body}!"}})
    tags = child(table="order_tags", parent_key="order_id", value="tag")
    unknown = child(table="order_marks", parent_key="order_id", value="mark")
    composer = Composer(Resource.ORDERS, {},
                        {"products": lines, "notes": noted, "tags": tags, "marks": unknown},
                        "UTC", child_labels={"products": ["qty", "product_id"],
                                             "notes": ["body"], "tags": ["tag"],
                                             "marks": ["other"]})
    assert composer.positional == {"products", "notes", "tags"}
    record = composer.compose("k1", {}, {"products": [(3, 10, "k1"), (1, 11, "k1")],
                                         "notes": [("hi", "k1")], "tags": [("a", "k1")],
                                         "marks": [{"mark": "m"}]})
    assert record.payload == {
        "products": [{"productId": "10", "quantity": 3}, {"productId": "11", "quantity": 1}],
        "notes": [{"text": "hi!"}], "tags": ["a"], "marks": ["m"],
    }


def test_child_option_price_defaults_to_number() -> None:
    options = child(
        table="variants",
        parent_key="product_id",
        fields={"id": "id", "name": "title", "price": "price"},
    )
    record = compose(
        Resource.PRODUCTS,
        {},
        {},
        {"options": options},
        {"options": [{"id": 5, "title": "Large", "price": Decimal("12.30")}]},
    )
    assert record.payload == {"options": [{"id": "5", "name": "Large", "price": 12.3}]}


def test_unknown_source_time_zone_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="unknown time zone 'Mars/Base'"):
        Composer(Resource.ORDERS, {}, {}, "Mars/Base")


def test_a_datetime_is_the_millisecond_of_its_aware_difference_from_the_epoch() -> None:
    # The definition, against the arithmetic coerce does instead (DST gaps and folds, both
    # sides of the epoch, microseconds, aware values in other zones, the calendar's ends).
    rng = random.Random(5)
    epoch, millisecond = datetime(1970, 1, 1, tzinfo=UTC), timedelta(milliseconds=1)
    zones = [UTC, SOFIA, ZoneInfo("America/Los_Angeles"), ZoneInfo("Pacific/Kiritimati"),
             timezone(timedelta(hours=-12))]
    values = [datetime.min, datetime.max, datetime(2024, 3, 31, 3, 30),
              datetime(2024, 10, 27, 3, 30), datetime(2024, 10, 27, 3, 30, fold=1),
              datetime(1969, 12, 31, 23, 59, 59, 999_500)]
    values += [datetime(1970, 1, 1) + timedelta(microseconds=rng.randrange(-5 * 10**16, 5 * 10**16))
               for _ in range(300)]
    values += [v.replace(tzinfo=rng.choice(zones), fold=rng.choice((0, 1))) for v in values[6:]]
    for value in values:
        for zone in zones:
            aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
            assert coerce(value, Coercion.TIMESTAMP, field(column="c"), zone) == \
                (aware - epoch) // millisecond, (value, zone)
