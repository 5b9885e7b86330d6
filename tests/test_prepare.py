"""`prepare`: a composed record reduced to what the planner and the client use, field by field."""

from __future__ import annotations

from cdc_sync.core.diff import canonical_json, fingerprint_json
from cdc_sync.core.prepare import prepare
from cdc_sync.core.resources import Resource, SourceRecord


def test_every_field_of_a_prepared_order_holds_its_own_value() -> None:
    payload = {"id": "7", "createdAt": 1_700_000_000_000, "amount": 1, "status": "done",
               "email": "a@b.co", "products": [{"productId": "5", "quantity": 1},
                                               {"productId": "6", "quantity": 0}]}
    record = SourceRecord("k7", payload, ("amount: bad",), kept="kept text")
    prepared = prepare(Resource.ORDERS, record, "source fp", with_payload=True)
    body = canonical_json(payload)
    assert prepared.key == "k7"
    assert prepared.body == body
    assert prepared.fingerprint == fingerprint_json(body)
    assert prepared.metrilo_id == "7"
    assert prepared.tags == ()
    assert prepared.reasons == ("amount: bad",
                                "products[1].quantity: must be greater than 0, got 0")
    assert prepared.email == "a@b.co"
    assert prepared.product_ids == ("5", "6")
    assert prepared.source_fingerprint == "source fp"
    assert prepared.kept == "kept text"
    assert prepared.payload is payload


def test_a_prepared_customer_has_its_email_as_identity_and_its_tags() -> None:
    payload = {"email": "a@b.co", "createdAt": 1_700_000_000_000, "tags": ["vip", "x"]}
    prepared = prepare(Resource.CUSTOMERS, SourceRecord("1", payload), None)
    assert (prepared.metrilo_id, prepared.tags, prepared.reasons) == ("a@b.co", ("vip", "x"), ())
    assert prepared.payload is None
    assert prepared.product_ids == ()
