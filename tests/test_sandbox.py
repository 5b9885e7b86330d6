"""The local Metrilo sandbox over real HTTP: its checks, its merge semantics, faults, storage."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from cdc_sync.cli import cli
from cdc_sync.core.resources import ALL_PATHS
from cdc_sync.sandbox import Faults, FaultsError, Sandbox, SandboxError, SandboxStoreError
from cdc_sync.sandbox.semantics import OPERATIONS

TOKEN = "test-token"
SECRET = "test-secret-\u00e9"  # non-ASCII: the key is the secret's UTF-8 bytes
MS = 1_518_004_715_732


def sign(body: bytes, secret: str = SECRET) -> str:
    """The X-Digest computed here, independently of cdc_sync.metrilo.signing."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def envelope(path: str, *items: dict[str, Any], token: str = TOKEN) -> bytes:
    base: dict[str, Any] = {"time": MS, "token": token, "platform": "sqlite"}
    if path.endswith("/batch"):
        base["batch"] = list(items)
    else:
        (base["params"],) = items
    return json.dumps(base).encode("utf-8")


def customer(email: str = "ann@example.com", **fields: Any) -> dict[str, Any]:
    return {"email": email, "createdAt": MS, **fields}


def product(product_id: str = "91", **fields: Any) -> dict[str, Any]:
    return {"id": product_id, "name": "Shirt", "price": 10.5, **fields}


def order(order_id: str = "14", **fields: Any) -> dict[str, Any]:
    lines = [{"productId": "91", "quantity": 1}]
    return {"id": order_id, "createdAt": MS, "amount": 10.5, "status": "paid", "products": lines,
            **fields}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(token=TOKEN, secret=SECRET) as running:
        yield running


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.base, timeout=10) as http:
        yield http


def send(client: httpx.Client, path: str, *items: dict[str, Any], **kwargs: Any) -> httpx.Response:
    body = envelope(path, *items, **kwargs)
    return client.post(f"/v2/{path}", content=body, headers={"X-Digest": sign(body)})


# --- the checks, in Metrilo's order -------------------------------------------------------------


def test_sandbox_serves_exactly_the_contract_paths() -> None:
    assert set(OPERATIONS) == ALL_PATHS


def test_signed_valid_customer_is_answered_200_and_stored(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    response = send(client, "customer", customer(firstName="Ann"))
    assert response.status_code == 200, response.text
    assert sandbox.store.get("customers", "ann@example.com") == customer(firstName="Ann")


def test_batch_stores_every_item(sandbox: Sandbox, client: httpx.Client) -> None:
    response = send(client, "product/batch", product("1"), product("2"), product("3"))
    assert response.status_code == 200
    assert list(sandbox.store.records("products")) == ["1", "2", "3"]


def test_missing_digest_is_401_and_nothing_is_stored(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    response = client.post("/v2/customer", content=envelope("customer", customer()))
    assert response.status_code == 401
    assert "X-Digest header is missing" in response.json()["error"]
    assert sandbox.store.counts()["customers"] == 0


def test_digest_with_the_wrong_secret_is_403(sandbox: Sandbox, client: httpx.Client) -> None:
    body = envelope("customer", customer())
    response = client.post("/v2/customer", content=body, headers={"X-Digest": sign(body, "nope")})
    assert response.status_code == 403
    assert sandbox.store.counts()["customers"] == 0


def test_digest_of_a_different_body_is_403(client: httpx.Client) -> None:
    body = envelope("customer", customer())
    response = client.post("/v2/customer", content=body + b" ", headers={"X-Digest": sign(body)})
    assert response.status_code == 403


def test_wrong_token_is_401_without_echoing_it(sandbox: Sandbox, client: httpx.Client) -> None:
    response = send(client, "customer", customer(), token="stolen-token")
    assert response.status_code == 401
    assert "stolen-token" not in response.text
    assert sandbox.store.counts()["customers"] == 0


@pytest.mark.parametrize("path", ["/v2/customers", "/v2/order/batch/", "/v1/order", "/order"])
def test_unknown_path_is_404(client: httpx.Client, path: str) -> None:
    body = envelope("order", order())
    response = client.post(path, content=body, headers={"X-Digest": sign(body)})
    assert response.status_code == 404
    assert "/v2/order/batch" in response.json()["error"]


def test_get_on_a_contract_path_is_405(client: httpx.Client) -> None:
    response = client.get("/v2/order")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_body_over_5_mb_is_413_and_the_connection_stays_usable(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    big = product(name="x" * 5_000_000)
    response = send(client, "product", big)
    assert response.status_code == 413
    assert "over Metrilo's limit of 5000000" in response.json()["error"]
    assert send(client, "product", product()).status_code == 200
    assert list(sandbox.store.records("products")) == ["91"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "body is not valid JSON"),
        (b'{"time": NaN, "token": "t", "params": {}}', "NaN is not JSON"),
        (json.dumps({"token": TOKEN, "params": customer()}).encode(), "time: is required"),
        (json.dumps({"time": MS, "token": TOKEN, "batch": [customer()]}).encode(),
         "params: is required"),
    ],
)
def test_malformed_body_is_400(client: httpx.Client, body: bytes, expected: str) -> None:
    response = client.post("/v2/customer", content=body, headers={"X-Digest": sign(body)})
    assert response.status_code == 400
    assert expected in response.text


def test_batch_with_one_invalid_item_is_refused_whole_naming_the_item(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    response = send(client, "customer/batch", customer("a@example.com"),
                    customer("b@example.com", createdAt=1_518_004_715))
    assert response.status_code == 400
    answer = response.json()
    assert answer["invalid_items"] == [1]
    assert answer["reasons"] == [
        "batch[1].createdAt: must be an integer number of milliseconds, got 1518004715 (seconds?)"
    ]
    assert sandbox.store.counts()["customers"] == 0


def test_single_invalid_record_is_400_with_the_reason(client: httpx.Client) -> None:
    response = send(client, "order", order(products=[{"productId": 91, "quantity": 1}]))
    assert response.status_code == 400
    assert response.json()["reasons"][0].startswith("params.products[0].productId: must be a str")


# --- Metrilo's merge semantics ------------------------------------------------------------------


def test_customer_tags_merge_on_upsert_and_only_untag_removes_them(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    send(client, "customer", customer(tags=["a", "b"]))
    send(client, "customer", customer(tags=["c"]))
    send(client, "customer", customer())
    assert sandbox.store.get("customers", "ann@example.com") == customer(tags=["a", "b", "c"])
    send(client, "customer/tag", {"email": "ann@example.com", "tags": ["d"]})
    send(client, "customer/untag", {"email": "ann@example.com", "tags": ["a", "c", "zz"]})
    assert sandbox.store.get("customers", "ann@example.com") == customer(tags=["b", "d"])


def test_tagging_an_unknown_customer_changes_nothing(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    response = send(client, "customer/tag", {"email": "who@example.com", "tags": ["x"]})
    assert response.status_code == 200
    assert sandbox.store.counts()["customers"] == 0
    assert sandbox.store.stats()["ignored_tag_requests"] == {"customer/tag": 1}


def test_product_options_merge_by_option_id(sandbox: Sandbox, client: httpx.Client) -> None:
    small = {"id": "s", "name": "S", "price": 1}
    medium = {"id": "m", "name": "M", "price": 2}
    send(client, "product", product(options=[small, medium]))
    send(client, "product", product(options=[{**small, "price": 9}, {"id": "l", "name": "L",
                                                                      "price": 3}]))
    held = sandbox.store.get("products", "91")
    assert held is not None
    assert held["options"] == [{**small, "price": 9}, medium, {"id": "l", "name": "L", "price": 3}]


def test_every_other_field_is_replaced_on_upsert(sandbox: Sandbox, client: httpx.Client) -> None:
    send(client, "product", product(categories=["C1", "C2"], sku="OLD"))
    send(client, "product", product(categories=["C3"], name="Renamed"))
    assert sandbox.store.get("products", "91") == product(categories=["C3"], name="Renamed")


def test_order_with_unknown_customer_or_product_is_marked_dropped(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    send(client, "order/batch", order("1", email="ghost@example.com"), order("2"))
    assert sandbox.store.dropped_orders() == {
        "1": "never received customer 'ghost@example.com', product '91'",
        "2": "never received product '91'",
    }


def test_order_sent_after_its_customer_and_products_is_kept(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    send(client, "customer", customer())
    send(client, "product", product())
    send(client, "order", order(email="ann@example.com"))
    assert sandbox.store.dropped_orders() == {}
    assert sandbox.store.why_dropped("14") is None
    assert sandbox.store.counts()["orders"] == 1


def test_resent_order_is_no_longer_dropped_once_its_product_arrived(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    send(client, "order", order())
    send(client, "product", product())
    send(client, "order", order())
    assert sandbox.store.dropped_orders() == {}


def test_a_large_batch_checks_every_orders_customer_and_products(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    # More keys than one SQL IN list of the old store held (500), some repeated in the batch.
    send(client, "customer/batch", *(customer(f"c{n}@example.com") for n in range(0, 700, 2)))
    send(client, "product/batch", *(product(str(n)) for n in range(700)))
    orders = [order(str(n), email=f"c{n % 800}@example.com",
                     products=[{"productId": str(n % 900), "quantity": 1},
                               {"productId": str(n % 7), "quantity": 2}])
              for n in range(1200)]
    send(client, "order/batch", *orders)
    send(client, "order/batch", *orders[:10], order("0", email="c0@example.com"))

    dropped = sandbox.store.dropped_orders()
    expected = {
        str(n) for n in range(1200)
        if (n % 800) % 2 or n % 800 >= 700 or n % 900 >= 700
    }
    assert set(dropped) == expected
    assert dropped["1"] == "never received customer 'c1@example.com'"
    assert dropped["799"] == "never received customer 'c799@example.com', product '799'"
    assert sandbox.store.counts()["orders"] == 1200
    assert sandbox.store.get("orders", "0") == order("0", email="c0@example.com")
    assert sandbox.store.stats()["duplicates"] == {"orders": 10}


def test_identical_resend_counts_as_duplicate(sandbox: Sandbox, client: httpx.Client) -> None:
    send(client, "category/batch", {"id": "1", "name": "A"}, {"id": "2", "name": "B"})
    send(client, "category/batch", {"id": "1", "name": "A"}, {"id": "2", "name": "B2"})
    stats = sandbox.store.stats()
    assert stats["duplicates"] == {"categories": 1}
    assert stats["items_accepted"] == {"categories": 4}


# --- faults -------------------------------------------------------------------------------------


def test_error_rate_one_answers_5xx_and_stores_nothing(
    sandbox: Sandbox, client: httpx.Client
) -> None:
    assert client.post("/_sandbox/faults", json={"error_rate": 1.0}).status_code == 200
    statuses = {send(client, "customer", customer()).status_code for _ in range(6)}
    assert statuses <= {500, 502}
    assert sandbox.store.counts()["customers"] == 0


def test_fault_limit_fails_only_the_first_requests(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.faults.update({"error_rate": 1.0, "limit": 2})
    statuses = [send(client, "customer", customer()).status_code for _ in range(3)]
    assert [s >= 500 for s in statuses] == [True, True, False]


def test_throttle_answers_429_with_retry_after(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.faults.update({"throttle_rate": 1.0, "retry_after": 7})
    response = send(client, "customer", customer())
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert sandbox.store.counts()["customers"] == 0


def test_dropped_connection_raises_on_the_client(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.faults.update({"drop_rate": 1.0, "limit": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        send(client, "customer", customer())
    assert sandbox.store.counts()["customers"] == 0
    assert send(client, "customer", customer()).status_code == 200
    assert sandbox.store.stats()["requests"]["customer"] == {"200": 1, "dropped": 1}


def test_slow_answers_are_delayed(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.faults.update({"delay_rate": 1.0, "delay": 0.3})
    started = time.perf_counter()
    assert send(client, "customer", customer()).status_code == 200
    assert time.perf_counter() - started >= 0.3
    body = envelope("customer", customer())
    with pytest.raises(httpx.ReadTimeout):
        client.post("/v2/customer", content=body, headers={"X-Digest": sign(body)}, timeout=0.05)


def test_faults_apply_only_to_the_paths_named(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.faults.update({"error_rate": 1.0, "paths": ["order/batch"]})
    assert send(client, "customer", customer()).status_code == 200
    assert send(client, "order/batch", order()).status_code in (500, 502)


def test_same_seed_gives_the_same_faults() -> None:
    def draws(seed: int) -> list[int]:
        faults = Faults(error_rate=0.5, seed=seed)
        return [faults.decide("order").status for _ in range(40)]

    assert draws(3) == draws(3)
    assert 200 in draws(3)
    assert set(draws(3)) - {200}


def test_bad_fault_settings_are_refused(client: httpx.Client) -> None:
    response = client.post("/_sandbox/faults", json={"error_rate": 2, "colour": "red"})
    assert response.status_code == 400
    assert "unknown setting(s) colour" in response.json()["error"]
    with pytest.raises(FaultsError, match="error_rate must be a number between 0 and 1"):
        Faults(error_rate=2)


# --- storage, inspection, lifecycle -------------------------------------------------------------


def test_records_survive_a_restart_with_a_store_path(tmp_path: Path) -> None:
    store = tmp_path / "sandbox.sqlite"
    with Sandbox(token=TOKEN, secret=SECRET, store_path=store) as first, httpx.Client() as http:
        body = envelope("customer", customer(tags=["a"]))
        http.post(f"{first.url}/customer", content=body, headers={"X-Digest": sign(body)})
    with Sandbox(token=TOKEN, secret=SECRET, store_path=store) as second, httpx.Client() as http:
        assert second.store.get("customers", "ann@example.com") == customer(tags=["a"])
        body = envelope("customer", customer(tags=["b"]))
        http.post(f"{second.url}/customer", content=body, headers={"X-Digest": sign(body)})
        assert second.store.get("customers", "ann@example.com") == customer(tags=["a", "b"])


def test_store_path_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.txt"
    garbage.write_text("not a database " * 100)
    with pytest.raises(SandboxStoreError, match="cannot open it as SQLite"):
        Sandbox(token=TOKEN, secret=SECRET, store_path=garbage)


def test_summary_counts_records_requests_duplicates_and_dropped_orders(
    client: httpx.Client,
) -> None:
    send(client, "customer", customer())
    send(client, "customer", customer())
    send(client, "order", order())
    client.post("/v2/customer", content=b"{}")
    summary = client.get("/_sandbox/summary").json()
    assert summary["records"] == {"customers": 1, "categories": 0, "products": 0, "orders": 1}
    assert summary["requests"] == {"customer": {"200": 2, "401": 1}, "order": {"200": 1}}
    assert summary["duplicates"] == {"customers": 1}
    assert summary["dropped_orders"] == {"count": 1, "first": {"14": "never received product '91'"}}
    assert summary["faults"]["error_rate"] == 0.0


def test_records_endpoint_pages_and_finds_one(client: httpx.Client) -> None:
    send(client, "product/batch", *(product(str(n)) for n in range(5)))
    page = client.get("/_sandbox/records/products", params={"limit": 2, "offset": 1}).json()
    assert (page["total"], list(page["records"])) == (5, ["1", "2"])
    one = client.get("/_sandbox/records/product/3").json()
    assert one["record"] == product("3")
    assert client.get("/_sandbox/records/products/99").status_code == 404
    assert client.get("/_sandbox/records/widgets").status_code == 404


def test_order_record_endpoint_says_why_it_was_dropped(client: httpx.Client) -> None:
    send(client, "order", order())
    assert client.get("/_sandbox/records/orders/14").json()["dropped"] == (
        "never received product '91'"
    )


def test_reset_forgets_records_and_faults(sandbox: Sandbox, client: httpx.Client) -> None:
    send(client, "customer", customer())
    sandbox.faults.update({"error_rate": 0.5})
    assert client.post("/_sandbox/reset").status_code == 200
    assert sandbox.store.counts()["customers"] == 0
    assert sandbox.faults.error_rate == 0.0
    assert client.get("/_sandbox/summary").json()["requests"] == {}


def test_status_page_shows_counts_and_recent_records(client: httpx.Client) -> None:
    send(client, "customer", customer(firstName="<Ann>"))
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<td>customers</td><td>1</td>" in page.text
    assert "&lt;Ann&gt;" in page.text
    assert "<Ann>" not in page.text


def test_status_page_shows_dates_names_and_amounts_as_people_read_them(
        client: httpx.Client) -> None:
    send(client, "customer", customer(firstName="Ann", lastName="Lee", tags=["vip"]))
    send(client, "product", product(price=10.5, categories=["3"]))
    send(client, "order", order(amount=1234.5, email="ann@example.com"))
    text = client.get("/").text
    local = datetime.fromtimestamp(MS / 1000).astimezone().isoformat(sep=" ", timespec="seconds")
    assert "<td>customers</td><td>ann@example.com</td><td>Ann Lee &lt;ann@example.com&gt;</td>" \
        f"<td>{local}</td>" in text
    assert '<td class="amount">1,234.50</td><td>paid</td>' in text
    assert "<td>order 14 by Ann Lee &lt;ann@example.com&gt;, 1 item</td>" in text
    assert '<td>Shirt</td><td></td><td class="amount">10.50</td><td>categories: 3</td>' in text
    visible = re.sub(r"<details>.*?</details>", "", text, flags=re.S)
    assert str(MS) not in visible  # epoch milliseconds only inside the folded JSON
    assert f"&quot;createdAt&quot;: {MS}" in text
    # The JSON endpoints are for machines and stay as Metrilo holds the records.
    assert client.get("/_sandbox/records/orders/14").json()["record"]["createdAt"] == MS


def test_repr_and_urls_never_show_the_secret(sandbox: Sandbox) -> None:
    assert SECRET not in repr(sandbox)
    assert sandbox.url == f"{sandbox.base}/v2"
    assert sandbox.base.startswith("http://127.0.0.1:")


def test_urls_before_start_say_how_to_start() -> None:
    idle = Sandbox(token=TOKEN, secret=SECRET)
    with pytest.raises(SandboxError, match="call start"):
        _ = idle.url
    idle.store.close()


def test_port_in_use_is_a_clear_error(sandbox: Sandbox) -> None:
    port = int(sandbox.base.rsplit(":", 1)[1])
    second = Sandbox(token=TOKEN, secret=SECRET, port=port)
    with pytest.raises(SandboxError, match=f"cannot listen on 127.0.0.1:{port}"):
        second.start()
    second.store.close()


# --- the `cdc-sync sandbox` command -------------------------------------------------------------


def test_sandbox_command_has_help() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--help"])
    assert result.exit_code == 0
    for text in ("--host", "--port", "--store", "METRILO_API_SECRET", "/_sandbox/faults"):
        assert text in result.output


def test_sandbox_command_serves_with_default_credentials_until_interrupted(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRILO_", "CDC_SYNC_"))}
    command = [sys.executable, "-c", "from cdc_sync.cli import main; main()",
               "sandbox", "--port", "0", "--store", str(tmp_path / "kept.sqlite")]
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert "expects 'sandbox-token'" in lines[0]
        assert "'sandbox-secret'" in lines[1]
        url = lines[2].strip().rsplit("METRILO_API_URL=", 1)[1]
        body = envelope("customer", customer(), token="sandbox-token")
        response = httpx.post(f"{url}/customer", content=body,
                              headers={"X-Digest": sign(body, "sandbox-secret")})
        assert response.status_code == 200, response.text
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "records kept in" in out
