"""The one HTTP layer every exchange collector uses.

One ``requests.Session`` (connection reuse, ``HTTPS_PROXY`` honoured through
``trust_env``), timeouts on every call, retries with exponential backoff and
jitter on timeouts, connection errors, 429, 418 and 5xx, ``Retry-After``
honoured up to a cap, a per-exchange token-bucket budget taken from the
exchange's published limits, and a request counter.

Failures come out as a few distinct exceptions (:mod:`pipeline.collect.errors`)
so a caller can say plainly what happened: :class:`GeoBlocked` (HTTP 451/403: the
exchange refuses this location), :class:`BadPayload` (a 200 that is not the JSON
we asked for: truncated JSON, an HTML page), :class:`RateLimited` (told to wait
longer than we are willing to), :class:`TransientError` (still failing after
every retry), :class:`NotFound`, :class:`ApiError` (the exchange's own error
document) and :class:`HttpError` (any other non-success status). Every message
is redacted there: nothing secret leaves the process.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import requests
import urllib3

from pipeline.collect.errors import (
    BadPayload,
    GeoBlocked,
    HttpError,
    NotFound,
    RateLimited,
    TransientError,
    api_error,
    clip,
    redact,
)
from pipeline.venues import display

USER_AGENT = "liqmap/0.1 (+static liquidation-heatmap site; public market data only)"



@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Tests shrink every number so faults cost milliseconds."""

    retries: int = 4  # attempts after the first
    backoff_base_s: float = 0.5  # first wait; doubles each attempt
    backoff_max_s: float = 20.0
    jitter: float = 0.25  # +/- fraction of the wait, so parallel runners do not retry in lockstep
    retry_after_cap_s: float = 60.0  # longer waits are not worth it inside one run
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        base = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        return max(0.0, base * (1 + rng.uniform(-self.jitter, self.jitter)))


@dataclass(frozen=True)
class Limit:
    """A token bucket: ``capacity`` weight units, refilled at ``per_second``."""

    capacity: float
    per_second: float




class TokenBucket:
    """Thread-safe token bucket; ``acquire`` sleeps until ``weight`` tokens are free."""

    def __init__(self, limit: Limit, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.limit = limit
        self.tokens = float(limit.capacity)
        self.clock = clock
        self.sleep = sleep
        self.stamp = clock()
        self.waited_s = 0.0
        self._lock = threading.Lock()

    def acquire(self, weight: float = 1.0) -> float:
        weight = min(float(weight), self.limit.capacity)
        with self._lock:
            now = self.clock()
            self.tokens = min(self.limit.capacity, self.tokens + (now - self.stamp) * self.limit.per_second)
            self.stamp = now
            wait = 0.0
            if self.tokens < weight:
                wait = (weight - self.tokens) / self.limit.per_second
                self.sleep(wait)
                self.waited_s += wait
                self.stamp = self.clock()
                self.tokens = weight
            self.tokens -= weight
            return wait


class RateLimiter:
    """The buckets of one exchange, chosen by the longest matching path prefix."""

    def __init__(self, limits: dict[str, Limit], **bucket_kw):
        self.buckets = {prefix: TokenBucket(lim, **bucket_kw) for prefix, lim in limits.items()}

    def acquire(self, path: str, weight: float = 1.0) -> float:
        prefix = max((p for p in self.buckets if path.startswith(p)), key=len, default="")
        bucket = self.buckets.get(prefix)
        return bucket.acquire(weight) if bucket else 0.0


def new_session() -> requests.Session:
    s = requests.Session()
    s.trust_env = True  # HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment
    s.headers["User-Agent"] = USER_AGENT
    s.headers["Accept"] = "application/json"
    return s


def _name_not_resolved(exc: BaseException) -> bool:
    """True when requests failed because DNS does not know the host (urllib3 NameResolutionError)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NameResolutionError)


def _json_or_none(resp: requests.Response) -> Any:
    try:
        return json.loads(resp.text)
    except ValueError:
        return None


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # HTTP-date form
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HttpClient:
    """HTTP for one exchange: base URL, budget, retries, counting.

    ``requests`` counts every attempt (retries included): that is what the
    exchange's rate limit sees and what ``raw_source_runs.requests`` records.
    """

    def __init__(
        self,
        exchange: str,
        base_url: str,
        *,
        session: requests.Session | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        limits: dict[str, Limit] | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.exchange = exchange
        self.name = display(exchange)
        self.base_url = base_url.rstrip("/")
        self.session = session or new_session()
        self.policy = policy or RetryPolicy()
        self.limiter = limiter if limiter is not None else RateLimiter(limits or {})
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.requests = 0
        self.retries = 0
        self._lock = threading.Lock()

    # -- public ------------------------------------------------------------
    def get_json(self, path: str, params: dict | None = None, *, weight: float = 1.0) -> Any:
        return self._send("GET", path, params=params, weight=weight, want_json=True)

    def post_json(self, path: str, body: dict, *, weight: float = 1.0) -> Any:
        # One path serves many requests (Hyperliquid's /info): name the request type in errors.
        label = f"{path} {body.get('type')}" if isinstance(body, dict) and isinstance(body.get("type"), str) else path
        return self._send("POST", path, json_body=body, weight=weight, want_json=True, label=label)

    def get_bytes(self, path: str, *, weight: float = 1.0) -> bytes:
        # Archive files (zip, CHECKSUM text) are not JSON: ask for anything.
        return self._send("GET", path, weight=weight, headers={"Accept": "*/*"}).content

    # -- internals ---------------------------------------------------------
    def _json(self, resp: requests.Response) -> Any:
        ctype = resp.headers.get("Content-Type", "")
        text = resp.text
        head = text.lstrip()[:200].lower()
        if "html" in ctype or head.startswith("<!doctype") or head.startswith("<html"):
            # Captive portals, CDN error pages and maintenance pages arrive as 200 HTML.
            raise BadPayload(f"{self.name} answered with an HTML page instead of JSON ({resp.url})", resp.status_code)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise BadPayload(
                f"{self.name} sent a response that is not valid JSON ({exc.msg} at char {exc.pos}; {len(text)} bytes)",
                resp.status_code,
            ) from None

    def _send(self, method: str, path: str, *, params=None, json_body=None, weight: float = 1.0,
              headers: dict | None = None, want_json: bool = False, label: str | None = None) -> Any:
        """The response (or with ``want_json`` its JSON document), retrying what is worth retrying."""
        url = self.base_url + path
        label = label or path
        pol = self.policy
        last: str = ""
        for attempt in range(pol.retries + 1):
            self.limiter.acquire(path, weight)
            with self._lock:
                self.requests += 1
            try:
                resp = self.session.request(
                    method, url, params=params, json=json_body, headers=headers,
                    timeout=(pol.connect_timeout_s, pol.read_timeout_s),
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                unresolvable = _name_not_resolved(exc)
                if unresolvable:
                    kind = "host name not resolved (offline?)"
                last = kind
                # An unknown host name stays unknown for the next seconds: one retry covers a
                # resolver blip, more would only make an offline build wait half a minute.
                if attempt < (min(pol.retries, 1) if unresolvable else pol.retries):
                    self._wait(pol.backoff(attempt, self.rng))
                    continue
                raise TransientError(
                    f"{self.name}: {kind} after {attempt + 1} attempts ({type(exc).__name__}): {url}"
                ) from None
            except requests.RequestException as exc:
                # A malformed base URL, a bad header, a broken body: requests quotes the URL
                # (credentials included) in these, so only the redacted text goes on.
                raise HttpError(f"{self.name}: request failed ({type(exc).__name__}): {exc}") from None
            code = resp.status_code
            if code in (451, 403):
                raise GeoBlocked(
                    f"{self.name} refuses requests from this location (HTTP {code}): "
                    "set HTTPS_PROXY or run outside the US",
                    code,
                )
            if code == 404:
                raise NotFound(f"{self.name}: not found (HTTP 404): {resp.url}", code)
            if code in (429, 418) or code >= 500:
                last = f"HTTP {code}"
                ra = _retry_after(resp)
                if ra is not None and ra > pol.retry_after_cap_s:
                    # Hammering before the ban ends makes it longer (Binance escalates 418 bans).
                    raise RateLimited(
                        f"{self.name} asked to wait {ra:.0f}s (HTTP {code}), more than the {pol.retry_after_cap_s:.0f}s cap",
                        code,
                    )
                if attempt < pol.retries:
                    wait = pol.backoff(attempt, self.rng)
                    if ra is not None:
                        wait = ra + self.rng.uniform(0, pol.jitter * max(ra, 0.01))
                    self._wait(wait)
                    continue
                cls = RateLimited if code in (429, 418) else TransientError
                raise cls(f"{self.name}: {last} after {attempt + 1} attempts: {url}", code)
            if code >= 400:
                err = api_error(self.exchange, label, _json_or_none(resp), code)
                if err is None:
                    # Redacted before it is cut, so a cut cannot leave half a secret unrecognised.
                    snippet = clip(redact(resp.text), 200)
                    raise HttpError(f"{self.name}: HTTP {code} for {resp.url}: {snippet}", code)
            elif not want_json:
                return resp
            else:
                doc = self._json(resp)
                err = api_error(self.exchange, label, doc, code)
                if err is None:
                    return doc
            # The exchange's own "slow down" / "busy" codes get the same patience as a 429 or a 503.
            if isinstance(err, (RateLimited, TransientError)) and attempt < pol.retries:
                last = str(err)
                self._wait(pol.backoff(attempt, self.rng))
                continue
            raise err
        raise TransientError(f"{self.name}: {last}")  # pragma: no cover - loop always returns/raises

    def _wait(self, seconds: float) -> None:
        self.retries += 1
        self.sleep(seconds)


@dataclass
class ClientFactory:
    """Makes one :class:`HttpClient` per exchange sharing one Session and one policy."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    session: requests.Session = field(default_factory=new_session)
    rate_limits: bool = True  # tests against the local replay server switch budgets off
    clients: dict[str, HttpClient] = field(default_factory=dict)

    def client(self, venue, base_url: str) -> HttpClient:
        """The client of ``venue`` (a collector class: its ``name`` and published ``limits``) at ``base_url``."""
        key = f"{venue.name} {base_url}"
        if key not in self.clients:
            limiter = RateLimiter(venue.limits if self.rate_limits else {})
            self.clients[key] = HttpClient(venue.name, base_url, session=self.session, policy=self.policy,
                                           limiter=limiter)
        return self.clients[key]

    def close(self) -> None:
        self.session.close()
