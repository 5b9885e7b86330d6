"""The Metrilo v2 HTTP client: signed bodies, batches by bytes, one classifier, one retry policy.

Every call is one pooled `httpx.Client` POST whose body is serialized once, signed with
HMAC-SHA256 (`X-Digest`) and sent byte for byte as signed. Batches are split by item count and
by body size, sent a few at a time, and a 400 is bisected down to the records that caused it.
Neither the token nor the secret ever reaches a log line, an error message or a repr.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from types import TracebackType

import httpx

import cdc_sync
from cdc_sync.core.resources import ALL_PATHS, TAG_PATH, UNTAG_PATH, Payload
from cdc_sync.errors import (
    ConfigError,
    MetriloError,
    MetriloFatalError,
    MetriloRejectedError,
    MetriloUnavailableError,
    Problem,
)
from cdc_sync.metrilo.batching import Batch, EncodedItem, Envelope, Item, split, to_json
from cdc_sync.metrilo.responses import Action, Verdict, classify, classify_error
from cdc_sync.metrilo.retry import RetryPolicy
from cdc_sync.metrilo.signing import digest

__all__ = ["BatchResult", "Item", "MetriloClient", "RetryPolicy"]

logger = logging.getLogger("cdc_sync.metrilo")


@dataclass
class BatchResult:
    """What happened to the items of one logical batch (one request before any bisection)."""

    path: str
    delivered: list[Item] = field(default_factory=list)
    rejected: list[tuple[Item, str]] = field(default_factory=list)
    pending: list[tuple[Item, str]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    bytes_sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


class _DigestAuth(httpx.Auth):
    """Signs the exact body bytes httpx is about to send, on every request."""

    requires_request_body = True

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def __repr__(self) -> str:
        return "_DigestAuth(secret=***)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["X-Digest"] = digest(request.content, self._secret)
        yield request


class _Run:
    """One deliver() call's shared stop signal: a fatal answer or Metrilo being unavailable."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.halt_reason: str | None = None
        self.fatal: MetriloFatalError | None = None
        self._lock = threading.Lock()

    def halt(self, reason: str, fatal: MetriloFatalError | None = None) -> None:
        with self._lock:
            self.halt_reason = self.halt_reason or reason
            self.fatal = self.fatal or fatal


class MetriloClient:
    """Sends records to Metrilo; one instance holds one connection pool, share it."""

    def __init__(
        self,
        *,
        token: str,
        secret: str,
        base_url: str,
        platform: str = "cdc-sync",
        plugin_version: str = cdc_sync.__version__,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        max_items: int = 500,
        max_bytes: int = 5_000_000,
        concurrency: int = 4,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so sharing it is safe
    ) -> None:
        _check_limits(max_items=max_items, max_bytes=max_bytes, concurrency=concurrency)
        self._base = _public_base(base_url)
        self._secrets = tuple(s for s in (token, secret) if s)
        self._envelope = Envelope(token, platform, plugin_version)
        self._max_items, self._max_bytes = max_items, max_bytes
        self._concurrency, self._retry = concurrency, retry
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            auth=_DigestAuth(secret),
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"cdc-sync/{cdc_sync.__version__}",
            },
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        """The API base URL, without credentials: safe to show."""
        return self._base

    def __repr__(self) -> str:
        return (
            f"MetriloClient(base_url={self._base!r}, concurrency={self._concurrency}, "
            f"max_items={self._max_items}, max_bytes={self._max_bytes})"
        )

    def __enter__(self) -> MetriloClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---- batches -------------------------------------------------------------------------

    def deliver(self, path: str, items: Iterable[Item]) -> Generator[BatchResult, None, None]:
        """Send `items` to a batch path, yielding one BatchResult per request as it completes.

        Items are consumed lazily: at most `concurrency` requests are in flight, and one batch
        more is made ready while they are (memory: that batch and the ones in flight). On a
        401/402/403 no further request starts; results that delivered or rejected something
        are still yielded, then MetriloFatalError is raised. Once a request runs out of
        retries, the remaining batches are reported pending without being sent.
        """
        _check_path(path, batch=True)
        run = _Run(path)
        batches = split(
            items,
            overhead=self._envelope.batch_overhead(_now_ms()),
            max_items=self._max_items,
            max_bytes=self._max_bytes,
        )
        pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="metrilo")
        try:
            yield from self._pump(run, batches, pool)
        finally:
            run.halt("not sent: the delivery was abandoned before this batch's turn")
            pool.shutdown(wait=False, cancel_futures=True)
        if run.fatal is not None:
            raise run.fatal

    def _pump(
        self, run: _Run, batches: Iterator[Batch], pool: ThreadPoolExecutor
    ) -> Iterator[BatchResult]:
        in_flight: set[Future[BatchResult]] = set()
        # One batch is made ready while the requests in flight wait for their answers: making
        # a batch pulls the caller's items (reading the shop, composing, planning), and made
        # only once an answer came back, that work waited a round trip behind every full set
        # of requests (a 1M-order push with 50 ms answers: 79 s, against 61 s without them).
        ready = next(batches, None)
        while True:
            while ready is not None and run.fatal is None and len(in_flight) < self._concurrency:
                in_flight.add(pool.submit(self._send_batch, run, ready))
                ready = next(batches, None)
            if not in_flight:
                return
            done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                if run.fatal is None or result.delivered or result.rejected:
                    yield result

    def _send_batch(self, run: _Run, batch: Batch) -> BatchResult:
        result = BatchResult(run.path, rejected=list(batch.unsendable))
        for item, reason in batch.unsendable:
            result.statuses["rejected_locally"] += 1
            logger.warning("%s: record %r not sent: %s", run.path, item.key, reason)
        if batch.items:
            self._send_group(run, batch.items, result)
        return result

    def _send_group(self, run: _Run, group: list[EncodedItem], result: BatchResult) -> None:
        if run.halt_reason is not None:
            result.pending.extend((e.item, run.halt_reason) for e in group)
            return
        bodies = [e.body for e in group]
        verdict = self._exchange(run.path, lambda now: self._envelope.batch(bodies, now), result)
        if verdict.action is Action.DELIVERED:
            result.delivered.extend(e.item for e in group)
        elif verdict.action is Action.BISECT and len(group) > 1:
            middle = len(group) // 2
            self._send_group(run, group[:middle], result)
            self._send_group(run, group[middle:], result)
        elif verdict.action in (Action.BISECT, Action.REJECT):
            self._reject(run.path, group, verdict.reason, result)
        elif verdict.action is Action.RETRY:
            result.pending.extend((e.item, verdict.reason) for e in group)
            run.halt(f"not sent: an earlier request to {run.path} ran out of retries")
        else:
            error = self._fatal_error(run.path, verdict)
            result.pending.extend((e.item, str(error)) for e in group)
            run.halt(f"not sent: {error}", error)

    def _reject(
        self, path: str, group: list[EncodedItem], reason: str, result: BatchResult
    ) -> None:
        for encoded in group:
            logger.warning("%s: Metrilo rejected record %r: %s", path, encoded.item.key, reason)
            result.rejected.append((encoded.item, reason))

    # ---- single records --------------------------------------------------------------------

    def send_one(self, path: str, params: Payload) -> None:
        """Send one record (or a tag/untag call); raises what the answer means."""
        _check_path(path, batch=False)
        try:
            body = to_json(params)
        except (TypeError, ValueError) as exc:
            reason = f"the record is not JSON-serializable ({exc}); fix its composition"
            raise MetriloRejectedError(f"{path}: {reason}", reason=reason) from None
        verdict = self._exchange(
            path, lambda now: self._envelope.single(body, now), BatchResult(path)
        )
        if verdict.action is Action.FATAL:
            raise self._fatal_error(path, verdict)
        if verdict.action in (Action.BISECT, Action.REJECT):
            raise MetriloRejectedError(
                f"POST {path} rejected: {verdict.reason}", reason=verdict.reason
            )
        if verdict.action is Action.RETRY:
            raise MetriloUnavailableError(
                f"POST {self._base}/{path} failed: {verdict.reason}; the record stays pending for "
                "the next cycle (if this persists, check METRILO_API_URL and the network)"
            )

    def tag(self, email: str, tags: Sequence[str]) -> None:
        self.send_one(TAG_PATH, {"email": email, "tags": list(tags)})

    def untag(self, email: str, tags: Sequence[str]) -> None:
        self.send_one(UNTAG_PATH, {"email": email, "tags": list(tags)})

    # ---- one request, with retries ---------------------------------------------------------

    def _exchange(self, path: str, build: Callable[[int], bytes], tally: BatchResult) -> Verdict:
        """POST until the answer is not transient or the retry policy says stop."""
        policy, started, attempt = self._retry, self._retry.clock(), 0
        while True:
            attempt += 1
            verdict = self._attempt(path, build(_now_ms()), tally)
            if verdict.action is not Action.RETRY:
                return verdict
            elapsed = policy.clock() - started
            delay = policy.next_delay(attempt, elapsed, verdict.retry_after)
            if delay is None:
                logger.error(
                    "%s: giving up after %d attempt(s) in %.1fs: %s",
                    path,
                    attempt,
                    elapsed,
                    verdict.reason,
                )
                return replace(
                    verdict, reason=f"{verdict.reason}; gave up after {attempt} attempt(s)"
                )
            logger.warning(
                "%s: %s; retry %d of %d in %.2fs",
                path,
                verdict.reason,
                attempt,
                policy.max_attempts - 1,
                delay,
            )
            tally.retries += 1
            policy.sleep(delay)

    def _attempt(self, path: str, body: bytes, tally: BatchResult) -> Verdict:
        if len(body) > self._max_bytes:
            reason = f"the {len(body):,}-byte request is over the {self._max_bytes:,}-byte limit"
            return Verdict(Action.REJECT, "rejected_locally", reason)
        tally.requests += 1
        tally.bytes_sent += len(body)
        try:
            response = self._http.post(path, content=body)
        except httpx.TransportError as exc:
            verdict = classify_error(exc)
        else:
            verdict = classify(response, self._scrub)
        tally.statuses[verdict.label] += 1
        return verdict

    def _scrub(self, text: str) -> str:
        """Metrilo may echo the body back; never let the token or secret out through it."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _fatal_error(self, path: str, verdict: Verdict) -> MetriloFatalError:
        answer = f"Metrilo answered {verdict.status_code}" if verdict.status_code else "failed"
        message = f"POST {self._base}/{path} {answer}: {verdict.reason}"
        logger.error("%s", message)
        return MetriloFatalError(message, status_code=verdict.status_code)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_path(path: str, *, batch: bool) -> None:
    if path not in ALL_PATHS or path.endswith("/batch") != batch:
        kind = "batch" if batch else "single-record"
        choices = ", ".join(sorted(p for p in ALL_PATHS if p.endswith("/batch") == batch))
        raise MetriloError(f"{path!r} is not a Metrilo {kind} path; use one of: {choices}")


def _check_limits(*, max_items: int, max_bytes: int, concurrency: int) -> None:
    for name, value in (
        ("max_items", max_items),
        ("max_bytes", max_bytes),
        ("concurrency", concurrency),
    ):
        if value < 1:
            raise ValueError(f"MetriloClient {name} is {value}; it must be 1 or more")


def _public_base(base_url: str) -> str:
    """The base URL without credentials, as shown in messages; checks it is http(s)."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(
            [
                Problem(
                    where="METRILO_API_URL",
                    what="is not an http(s) URL",
                    fix="set it to Metrilo's API base, such as https://trk.mtrl.me/v2",
                )
            ]
        )
    return str(url.copy_with(username=None, password=None)).rstrip("/")
