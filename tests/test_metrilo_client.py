"""The Metrilo client against httpx.MockTransport: signing, splitting, bisection, retries, limits.

Expected digests are computed here with hmac/hashlib (and once with the openssl CLI), never
taken from Metrilo's guide, whose printed digests do not verify.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

import cdc_sync
from cdc_sync.errors import (
    ConfigError,
    MetriloError,
    MetriloFatalError,
    MetriloRejectedError,
    MetriloUnavailableError,
)
from cdc_sync.metrilo.client import BatchResult, Item, MetriloClient, RetryPolicy
from cdc_sync.metrilo.retry import parse_retry_after

TOKEN = "tok-7f3a9c-project"
SECRET = "sec-very-private-4b1e"
BASE_URL = "https://metrilo.test/v2"

Handler = Callable[[httpx.Request], httpx.Response]


def hmac_hex(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Seen:
    """Every request the mock Metrilo received (thread-safe: requests arrive concurrently)."""

    requests: list[httpx.Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: httpx.Request) -> None:
        with self.lock:
            self.requests.append(request)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) for r in self.requests]

    def batch_emails(self) -> list[str]:
        return [rec["email"] for body in self.bodies() for rec in body["batch"]]


@dataclass
class Sleeps:
    """An injected sleep that records instead of waiting, and a clock it advances."""

    delays: list[float] = field(default_factory=list)
    now: float = 0.0

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(
    handler: Handler, seen: Seen, sleeps: Sleeps | None = None, **options: Any
) -> MetriloClient:
    def recording(request: httpx.Request) -> httpx.Response:
        seen.add(request)
        return handler(request)

    sleeps = sleeps or Sleeps()
    policy = options.pop("retry", None) or RetryPolicy(
        max_attempts=options.pop("max_attempts", 4),
        base_delay=0.001,
        sleep=sleeps.sleep,
        clock=sleeps.clock,
    )
    return MetriloClient(
        token=TOKEN,
        secret=SECRET,
        base_url=BASE_URL,
        transport=httpx.MockTransport(recording),
        retry=policy,
        **options,
    )


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


def customers(count: int, *, padding: int = 0, prefix: str = "c") -> Iterator[Item]:
    for n in range(count):
        email = f"{prefix}{n}@shop.test"
        payload = {"email": email, "createdAt": 1_700_000_000_000 + n}
        if padding:
            payload["firstName"] = "x" * padding
        yield Item(key=email, payload=payload)


def run(client: MetriloClient, path: str, items: Iterator[Item] | list[Item]) -> list[BatchResult]:
    with client:
        return list(client.deliver(path, items))


def delivered_keys(results: list[BatchResult]) -> list[str]:
    return [item.key for result in results for item in result.delivered]


# ---- signing and envelope ----------------------------------------------------------------


def test_every_batch_request_is_signed_over_the_exact_bytes_sent() -> None:
    seen = Seen()
    run(make_client(ok, seen, max_items=2), "customer/batch", customers(5))

    assert len(seen.requests) == 3
    for request in seen.requests:
        assert request.headers["X-Digest"] == hmac_hex(request.content)
        assert request.headers["Content-Type"] == "application/json"
        assert str(request.url).startswith(f"{BASE_URL}/customer/batch")


def test_batch_envelope_carries_time_token_platform_version_and_the_records() -> None:
    seen = Seen()
    before = int(time.time() * 1000)
    run(make_client(ok, seen, platform="postgresql"), "order/batch", customers(2))
    after = int(time.time() * 1000)

    (body,) = seen.bodies()
    assert set(body) == {"time", "token", "platform", "pluginVersion", "batch"}
    assert isinstance(body["time"], int)
    assert before <= body["time"] <= after
    assert body["token"] == TOKEN
    assert body["platform"] == "postgresql"
    assert body["pluginVersion"] == cdc_sync.__version__
    assert body["batch"] == [item.payload for item in customers(2)]


def test_customer_tag_and_untag_calls_are_signed_with_params_envelopes() -> None:
    seen = Seen()
    with make_client(ok, seen) as client:
        client.send_one("customer", {"email": "a@shop.test", "createdAt": 1})
        client.tag("a@shop.test", ["vip", "newsletter"])
        client.untag("a@shop.test", ("vip",))

    assert [r.url.path for r in seen.requests] == [
        "/v2/customer",
        "/v2/customer/tag",
        "/v2/customer/untag",
    ]
    for request in seen.requests:
        assert request.headers["X-Digest"] == hmac_hex(request.content)
    params = [body["params"] for body in seen.bodies()]
    assert params[1] == {"email": "a@shop.test", "tags": ["vip", "newsletter"]}
    assert params[2] == {"email": "a@shop.test", "tags": ["vip"]}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
def test_digest_matches_openssl_over_the_body_sent() -> None:
    seen = Seen()
    with make_client(ok, seen) as client:
        client.tag("zoë@shop.test", ["vip"])
    (request,) = seen.requests
    openssl = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", SECRET],
        input=request.content,
        capture_output=True,
        check=True,
    )
    assert openssl.stdout.decode().split()[-1] == request.headers["X-Digest"]


def test_body_is_compact_utf8_json_without_ascii_escapes() -> None:
    seen = Seen()
    item = Item("k", {"email": "zoë@shop.test", "firstName": "Zoë Ünal"})
    run(make_client(ok, seen), "customer/batch", [item])

    (request,) = seen.requests
    assert "Zoë Ünal".encode() in request.content
    assert b'"batch":[{"email":' in request.content
    assert b", " not in request.content
    assert b": " not in request.content


def test_each_payload_is_serialized_once_despite_bisection_and_retries(sleeps: Sleeps) -> None:
    serializations: list[str] = []

    class CountingPayload(dict[str, Any]):
        def items(self) -> Any:  # json's encoder calls items() on dict subclasses
            serializations.append(self["email"])
            return super().items()

    calls = 0

    def flaky_then_picky(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(500)
        if b"c3@" in request.content:
            return httpx.Response(400, text="bad record")
        return httpx.Response(200)

    items = [Item(f"c{n}", CountingPayload(email=f"c{n}@shop.test")) for n in range(6)]
    results = run(make_client(flaky_then_picky, Seen(), sleeps), "customer/batch", items)

    assert len(delivered_keys(results)) == 5
    assert sorted(serializations) == sorted(f"c{n}@shop.test" for n in range(6))


def test_a_body_the_caller_already_encoded_is_sent_as_given_not_encoded_again() -> None:
    serializations: list[str] = []

    class CountingPayload(dict[str, Any]):
        def items(self) -> Any:
            serializations.append(self["email"])
            return super().items()

    seen = Seen()
    canonical = b'{"createdAt":1700000000000,"email":"zo\xc3\xab@shop.test"}'  # keys sorted
    payload = CountingPayload(email="zoë@shop.test", createdAt=1_700_000_000_000)
    items = [Item("pre", payload, body=canonical), *customers(2)]
    results = run(make_client(ok, seen), "customer/batch", items)

    assert delivered_keys(results) == ["pre", "c0@shop.test", "c1@shop.test"]
    assert serializations == []
    (request,) = seen.requests
    assert b'"batch":[' + canonical + b',{"email":"c0@shop.test"' in request.content
    assert request.headers["X-Digest"] == hmac_hex(request.content)
    assert seen.bodies()[0]["batch"][0] == {"email": "zoë@shop.test", "createdAt": 1700000000000}


def test_a_given_body_counts_against_the_byte_limit_like_an_encoded_one() -> None:
    huge = b'{"email":"huge@shop.test","firstName":"' + b"x" * 5000 + b'"}'
    items = [*customers(2), Item("huge", {"email": "huge@shop.test"}, body=huge)]
    results = run(make_client(ok, Seen(), max_bytes=2000), "customer/batch", items)

    assert sorted(delivered_keys(results)) == ["c0@shop.test", "c1@shop.test"]
    assert [item.key for r in results for item, _ in r.rejected] == ["huge"]


def test_items_equal_whether_or_not_their_body_was_given() -> None:
    assert Item("k", {"a": 1}, body=b'{"a":1}') == Item("k", {"a": 1})
    assert "body" not in repr(Item("k", {"a": 1}, body=b'{"a":1}'))


# ---- splitting ---------------------------------------------------------------------------


def test_batches_stay_under_5_mb_and_deliver_every_item_exactly_once() -> None:
    seen = Seen()
    results = run(make_client(ok, seen), "customer/batch", customers(120, padding=100_000))

    assert len(seen.requests) == 3
    assert all(len(r.content) <= 5_000_000 for r in seen.requests)
    sizes = sorted((len(r.content) for r in seen.requests), reverse=True)
    assert all(size > 4_800_000 for size in sizes[:-1])  # filled, not timid
    sent = seen.batch_emails()
    assert len(sent) == len(set(sent)) == 120
    assert sorted(delivered_keys(results)) == sorted(item.key for item in customers(120))
    assert sum(r.bytes_sent for r in results) == sum(len(r.content) for r in seen.requests)


def test_batches_are_split_by_item_count() -> None:
    seen = Seen()
    run(make_client(ok, seen, max_items=3, concurrency=1), "customer/batch", customers(7))

    assert [len(body["batch"]) for body in seen.bodies()] == [3, 3, 1]


def test_a_body_exactly_at_the_byte_limit_is_sent_whole() -> None:
    items = list(customers(4))
    probe = Seen()
    run(make_client(ok, probe), "customer/batch", items)
    whole = len(probe.requests[0].content)

    at_limit, one_under = Seen(), Seen()
    run(make_client(ok, at_limit, max_bytes=whole), "customer/batch", items)
    run(make_client(ok, one_under, max_bytes=whole - 1), "customer/batch", items)

    assert len(at_limit.requests) == 1
    assert len(one_under.requests) == 2


def test_a_record_too_large_for_any_request_is_rejected_locally_while_others_go() -> None:
    seen = Seen()
    items = [*customers(3), Item("huge", {"email": "huge@shop.test", "firstName": "x" * 5000})]
    results = run(make_client(ok, seen, max_bytes=2000), "customer/batch", items)

    assert sorted(delivered_keys(results)) == ["c0@shop.test", "c1@shop.test", "c2@shop.test"]
    rejected = [(item.key, reason) for r in results for item, reason in r.rejected]
    assert len(rejected) == 1
    key, reason = rejected[0]
    assert key == "huge"
    assert "2,000-byte limit" in reason
    assert "5," in reason  # its own size, over 5,000 bytes
    assert "huge@shop.test" not in seen.batch_emails()


def test_a_record_that_is_not_json_is_rejected_locally_while_others_go() -> None:
    items = [*customers(2), Item("weird", {"email": "w@shop.test", "createdAt": float("nan")})]
    results = run(make_client(ok, Seen()), "customer/batch", items)

    assert sorted(delivered_keys(results)) == ["c0@shop.test", "c1@shop.test"]
    reasons = [reason for r in results for _item, reason in r.rejected]
    assert len(reasons) == 1
    assert "not JSON-serializable" in reasons[0]


def test_many_unsendable_records_come_back_in_bounded_batches() -> None:
    items = [
        Item(f"n{n}", {"email": f"n{n}@shop.test", "createdAt": float("inf")}) for n in range(25)
    ]
    results = run(make_client(ok, Seen(), max_items=10), "customer/batch", items)

    assert sorted(len(r.rejected) for r in results) == [5, 10, 10]
    assert all(r.requests == 0 for r in results)


# ---- 400: bisection ----------------------------------------------------------------------


def rejects(marker: bytes, text: str = "invalid email address") -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if marker in request.content:
            return httpx.Response(400, text=text)
        return httpx.Response(200)

    return handler


def test_a_400_is_bisected_down_to_the_one_bad_record() -> None:
    seen = Seen()
    items = [*customers(5), Item("bad", {"email": "not-an-email"}), *customers(4, prefix="d")]
    results = run(make_client(rejects(b"not-an-email"), seen), "customer/batch", items)

    assert len(delivered_keys(results)) == 9
    (result,) = results
    assert [(item.key, reason) for item, reason in result.rejected] == [
        ("bad", "Metrilo answered 400: invalid email address")
    ]
    assert result.pending == []
    assert result.statuses["400"] >= 2
    assert result.requests == len(seen.requests) < 10  # bisection, not one request per record


def test_two_bad_records_in_one_batch_are_both_isolated() -> None:
    items = list(customers(16))
    items[3] = Item("bad1", {"email": "BAD"})
    items[12] = Item("bad2", {"email": "BAD"})
    results = run(make_client(rejects(b"BAD"), Seen()), "customer/batch", items)

    assert sorted(item.key for r in results for item, _ in r.rejected) == ["bad1", "bad2"]
    assert len(delivered_keys(results)) == 14


def test_rejection_reason_is_metrilos_answer_truncated() -> None:
    handler = rejects(b"BAD", text="no good " * 2000)
    results = run(make_client(handler, Seen()), "customer/batch", [Item("bad", {"email": "BAD"})])

    ((_item, reason),) = results[0].rejected
    assert reason.startswith("Metrilo answered 400: no good no good")
    assert len(reason) < 400


def test_other_4xx_rejects_the_request_without_bisecting() -> None:
    seen = Seen()
    handler: Handler = lambda request: httpx.Response(404, text="no such route")  # noqa: E731
    results = run(make_client(handler, seen), "customer/batch", customers(8))

    assert len(seen.requests) == 1
    assert len(results[0].rejected) == 8
    assert "404" in results[0].rejected[0][1]


def test_single_record_400_raises_rejected_with_reason() -> None:
    with (
        make_client(rejects(b"BAD", "email is required"), Seen()) as client,
        pytest.raises(MetriloRejectedError) as caught,
    ):
        client.send_one("order", {"id": "1", "email": "BAD"})
    assert caught.value.reason == "Metrilo answered 400: email is required"


# ---- 401/402/403: fatal ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "check METRILO_API_TOKEN and METRILO_API_SECRET"),
        (402, "requires payment"),
        (403, "check METRILO_API_SECRET and the project's IP allow-list"),
    ],
)
def test_fatal_status_is_not_retried_and_names_what_to_check(
    status: int, hint: str, sleeps: Sleeps
) -> None:
    seen = Seen()
    client = make_client(lambda r: httpx.Response(status), seen, sleeps)
    with pytest.raises(MetriloFatalError) as caught:
        run(client, "customer/batch", customers(3))

    assert len(seen.requests) == 1
    assert sleeps.delays == []
    assert caught.value.status_code == status
    assert hint in str(caught.value)
    assert SECRET not in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_fatal_status_on_a_single_call_raises_after_one_request() -> None:
    seen = Seen()
    with (
        make_client(lambda r: httpx.Response(403), seen) as client,
        pytest.raises(MetriloFatalError, match="IP allow-list"),
    ):
        client.tag("a@shop.test", ["vip"])
    assert len(seen.requests) == 1


def test_results_delivered_before_a_fatal_answer_are_yielded_then_it_raises() -> None:
    seen = Seen()

    def first_ok_then_401(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200 if len(seen.requests) == 1 else 401)

    consumed: list[Item] = []

    def counted() -> Iterator[Item]:
        for item in customers(100):
            consumed.append(item)
            yield item

    client = make_client(first_ok_then_401, seen, max_items=2, concurrency=1)
    yielded: list[BatchResult] = []
    with client, pytest.raises(MetriloFatalError):
        yielded.extend(client.deliver("customer/batch", counted()))

    assert delivered_keys(yielded) == ["c0@shop.test", "c1@shop.test"]
    assert len(seen.requests) == 2  # nothing started after the 401
    # Nor was the rest of the stream read: the two batches sent, the one made ready while
    # the second was in flight, and the item that told the splitter a batch was full.
    assert len(consumed) <= 3 * 2 + 1


def test_a_fatal_answer_during_bisection_keeps_what_was_already_settled() -> None:
    def picky_then_401(request: httpx.Request) -> httpx.Response:
        if b"BAD" in request.content:
            return httpx.Response(400, text="bad email")
        return httpx.Response(401 if b"c2@" in request.content else 200)

    items = list(customers(4))
    items[1] = Item("bad", {"email": "BAD"})
    client = make_client(picky_then_401, Seen())
    yielded: list[BatchResult] = []
    with client, pytest.raises(MetriloFatalError):
        yielded.extend(client.deliver("customer/batch", items))

    (result,) = yielded
    assert [item.key for item in result.delivered] == ["c0@shop.test"]
    assert [item.key for item, _ in result.rejected] == ["bad"]
    assert [item.key for item, _ in result.pending] == ["c2@shop.test", "c3@shop.test"]
    assert "answered 401" in result.pending[0][1]


# ---- retries -----------------------------------------------------------------------------


def fails_then_ok(*failures: httpx.Response | Exception) -> Handler:
    remaining = list(failures)

    def handler(request: httpx.Request) -> httpx.Response:
        if not remaining:
            return httpx.Response(200)
        failure = remaining.pop(0)
        if isinstance(failure, Exception):
            raise failure
        return failure

    return handler


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_transient_statuses_are_retried_until_delivered(status: int, sleeps: Sleeps) -> None:
    handler = fails_then_ok(httpx.Response(status), httpx.Response(status))
    results = run(make_client(handler, Seen(), sleeps), "product/batch", customers(3))

    (result,) = results
    assert len(result.delivered) == 3
    assert result.requests == 3
    assert result.retries == 2
    assert result.statuses == {str(status): 2, "200": 1}
    assert len(sleeps.delays) == 2


def test_retry_after_in_seconds_is_honoured(sleeps: Sleeps) -> None:
    handler = fails_then_ok(httpx.Response(429, headers={"Retry-After": "7"}))
    results = run(make_client(handler, Seen(), sleeps), "customer/batch", customers(1))

    assert len(results[0].delivered) == 1
    assert sleeps.delays == [7.0]


def test_retry_after_as_an_http_date_is_honoured(sleeps: Sleeps) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=40), usegmt=True)
    handler = fails_then_ok(httpx.Response(503, headers={"Retry-After": when}))
    run(make_client(handler, Seen(), sleeps), "customer/batch", customers(1))

    (delay,) = sleeps.delays
    assert 37 <= delay <= 40


def test_retry_after_beyond_the_time_budget_gives_up_at_once(sleeps: Sleeps) -> None:
    seen = Seen()
    handler = fails_then_ok(httpx.Response(429, headers={"Retry-After": "3600"}))
    results = run(make_client(handler, seen, sleeps), "customer/batch", customers(2))

    assert len(seen.requests) == 1
    assert sleeps.delays == []
    assert len(results[0].pending) == 2


def test_timeouts_and_connection_errors_are_retried(sleeps: Sleeps) -> None:
    handler = fails_then_ok(
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("connection refused"),
        httpx.RemoteProtocolError("peer closed connection"),
    )
    (result,) = run(make_client(handler, Seen(), sleeps), "category/batch", customers(2))

    assert len(result.delivered) == 2
    assert result.statuses == {"timeout": 1, "connect_error": 1, "network_error": 1, "200": 1}
    assert result.retries == 3


def test_exhausted_retries_leave_items_pending_with_the_last_reason(sleeps: Sleeps) -> None:
    seen = Seen()
    handler: Handler = lambda r: httpx.Response(503, text="maintenance")  # noqa: E731
    results = run(make_client(handler, seen, sleeps, max_attempts=3), "order/batch", customers(4))

    (result,) = results
    assert result.delivered == []
    assert result.rejected == []
    assert len(result.pending) == 4
    reason = result.pending[0][1]
    assert "Metrilo answered 503: maintenance" in reason
    assert "gave up after 3 attempt(s)" in reason
    assert len(seen.requests) == 3
    assert len(sleeps.delays) == 2


def test_retries_and_giving_up_are_logged_by_the_metrilo_logger(
    caplog: pytest.LogCaptureFixture, sleeps: Sleeps
) -> None:
    caplog.set_level(logging.INFO, logger="cdc_sync.metrilo")
    handler: Handler = lambda r: httpx.Response(502, text="bad gateway")  # noqa: E731
    run(make_client(handler, Seen(), sleeps, max_attempts=2), "order/batch", customers(1))

    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert ("cdc_sync.metrilo", logging.WARNING) in {(name, level) for name, level, _ in records}
    gave_up = [msg for name, level, msg in records if level == logging.ERROR]
    assert len(gave_up) == 1
    assert "order/batch: giving up after 2 attempt(s)" in gave_up[0]


def test_backoff_delays_grow_exponentially_within_full_jitter(sleeps: Sleeps) -> None:
    policy = RetryPolicy(
        max_attempts=5, base_delay=1.0, max_delay=3.0, sleep=sleeps.sleep, clock=sleeps.clock
    )
    handler: Handler = lambda r: httpx.Response(500)  # noqa: E731
    run(make_client(handler, Seen(), retry=policy), "order/batch", customers(1))

    ceilings = [1.0, 2.0, 3.0, 3.0]
    assert len(sleeps.delays) == 4
    assert all(0 <= d <= c for d, c in zip(sleeps.delays, ceilings, strict=True))


def test_time_budget_stops_retries_before_max_attempts(sleeps: Sleeps) -> None:
    seen = Seen()
    policy = RetryPolicy(
        max_attempts=50,
        base_delay=10,
        max_delay=10,
        max_elapsed=25,
        sleep=sleeps.sleep,
        clock=sleeps.clock,
    )
    handler: Handler = lambda r: httpx.Response(502)  # noqa: E731
    run(make_client(handler, seen, retry=policy), "order/batch", customers(1))

    assert sum(sleeps.delays) <= 25
    assert len(seen.requests) < 50


def test_single_call_with_exhausted_retries_raises_unavailable(sleeps: Sleeps) -> None:
    handler: Handler = lambda r: httpx.Response(500)  # noqa: E731
    with (
        make_client(handler, Seen(), sleeps, max_attempts=2) as client,
        pytest.raises(MetriloUnavailableError, match="Metrilo answered 500"),
    ):
        client.untag("a@shop.test", ["vip"])


def test_after_retries_run_out_later_batches_stay_pending_unsent(sleeps: Sleeps) -> None:
    seen = Seen()
    handler: Handler = lambda r: httpx.Response(500)  # noqa: E731
    client = make_client(handler, seen, sleeps, max_attempts=2, max_items=1, concurrency=1)
    results = run(client, "customer/batch", customers(3))

    assert len(seen.requests) == 2
    assert [r.requests for r in results] == [2, 0, 0]
    assert all(len(r.pending) == 1 for r in results)
    assert "ran out of retries" in results[2].pending[0][1]


# ---- concurrency and memory --------------------------------------------------------------


def test_several_requests_are_really_in_flight_at_once() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def meet_then_ok(request: httpx.Request) -> httpx.Response:
        barrier.wait()  # breaks (and fails the test) unless two requests are open together
        return httpx.Response(200)

    client = make_client(meet_then_ok, Seen(), max_items=1, concurrency=2)
    results = run(client, "customer/batch", customers(4))

    assert len(delivered_keys(results)) == 4


def test_requests_in_flight_never_exceed_concurrency() -> None:
    lock = threading.Lock()
    open_now, most = 0, 0

    def slow_ok(request: httpx.Request) -> httpx.Response:
        nonlocal open_now, most
        with lock:
            open_now += 1
            most = max(most, open_now)
        time.sleep(0.01)
        with lock:
            open_now -= 1
        return httpx.Response(200)

    results = run(
        make_client(slow_ok, Seen(), max_items=1, concurrency=3), "customer/batch", customers(15)
    )

    assert len(delivered_keys(results)) == 15
    assert 2 <= most <= 3


def test_items_are_consumed_lazily_a_few_batches_ahead() -> None:
    consumed = 0

    def counted() -> Iterator[Item]:
        nonlocal consumed
        for item in customers(10_000):
            consumed += 1
            yield item

    with make_client(ok, Seen(), max_items=10, concurrency=2) as client:
        stream = client.deliver("customer/batch", counted())
        next(stream)
        assert consumed <= (2 + 1) * 10 + 1
        stream.close()


def test_the_next_batch_is_made_while_the_requests_in_flight_wait_for_metrilo() -> None:
    # Making a batch pulls the caller's items (in a cycle: reading, composing, planning). It
    # must not wait for an answer: one request at a time here, and the first is answered only
    # once the second batch has been made (its item pulled, and the one after it, which tells
    # the splitter that batch is full).
    second_batch_made = threading.Event()
    made_in_time: list[bool] = []

    def counted() -> Iterator[Item]:
        for n, item in enumerate(customers(5)):
            if n == 2:
                second_batch_made.set()
            yield item

    def answer_once_the_next_batch_is_made(request: httpx.Request) -> httpx.Response:
        if not made_in_time:
            made_in_time.append(second_batch_made.wait(timeout=5))
        return httpx.Response(200)

    client = make_client(answer_once_the_next_batch_is_made, Seen(), max_items=1,
                         concurrency=1)
    results = run(client, "customer/batch", counted())

    assert made_in_time == [True], "the second batch was made only after the first answer"
    assert len(delivered_keys(results)) == 5


# ---- secrets, paths, configuration -------------------------------------------------------


def echoes_body(status: int) -> Handler:
    return lambda request: httpx.Response(status, content=request.content)


def test_secret_and_token_never_reach_logs_errors_reasons_or_repr(
    caplog: pytest.LogCaptureFixture, sleeps: Sleeps
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    for status in (400, 500, 401):
        client = make_client(echoes_body(status), Seen(), sleeps, max_attempts=2)
        texts.append(repr(client))
        try:
            results = run(client, "customer/batch", customers(2))
        except MetriloError as exc:
            texts.append(str(exc))
        else:
            texts.extend(reason for r in results for _i, reason in [*r.rejected, *r.pending])
        with make_client(echoes_body(status), Seen(), sleeps, max_attempts=2) as single:
            with pytest.raises(MetriloError) as caught:
                single.tag("a@shop.test", ["vip"])
            texts.append(str(caught.value))
            texts.append(repr(single))

    everything = "\n".join([*texts, caplog.text])
    assert "Metrilo answered 400" in everything  # the echoed bodies did reach the reasons
    assert SECRET not in everything
    assert TOKEN not in everything


def test_unknown_or_mismatched_paths_are_refused() -> None:
    with make_client(ok, Seen()) as client:
        with pytest.raises(MetriloError, match="not a Metrilo batch path"):
            list(client.deliver("customer", customers(1)))
        with pytest.raises(MetriloError, match="not a Metrilo single-record path"):
            client.send_one("customer/batch", {})
        with pytest.raises(MetriloError, match="not a Metrilo single-record path"):
            client.send_one("customer/delete", {})


def test_base_url_must_be_http_and_is_shown_without_credentials() -> None:
    with pytest.raises(ConfigError, match="METRILO_API_URL"):
        MetriloClient(token=TOKEN, secret=SECRET, base_url="trk.mtrl.me/v2")
    client = MetriloClient(token=TOKEN, secret=SECRET, base_url="https://user:pw@sandbox.test/v2/")
    with client:
        assert "pw" not in repr(client)
        assert "https://sandbox.test/v2" in repr(client)


# ---- the retry policy on its own ---------------------------------------------------------


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12", now) == 12.0
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("nan", now) is None
    assert parse_retry_after(None, now) is None


def test_retry_policy_stops_at_max_attempts_and_prefers_retry_after() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=30, max_elapsed=100)
    assert policy.next_delay(1, elapsed=0, retry_after=20) == 20
    assert policy.next_delay(3, elapsed=0) is None
    assert policy.next_delay(1, elapsed=90, retry_after=20) is None
    assert 0 <= (policy.next_delay(2, elapsed=0) or 0) <= 1.0
