"""The one HTTP layer every exchange collector uses.

One ``requests.Session`` (connection reuse, ``HTTPS_PROXY`` honoured through
``trust_env``), timeouts on every call, retries with exponential backoff and
jitter on timeouts, connection errors, 429, 418 and 5xx, ``Retry-After``
honoured up to a cap, a per-exchange token-bucket budget taken from the
exchange's published limits, and a request counter.

Failures come out as a few distinct exceptions so a caller can say plainly what
happened: :class:`GeoBlocked` (HTTP 451/403: the exchange refuses this location),
:class:`BadPayload` (a 200 that is not the JSON we asked for: truncated JSON, an
HTML page), :class:`RateLimited` (told to wait longer than we are willing to),
:class:`TransientError` (still failing after every retry), :class:`NotFound`
and :class:`HttpError` (any other non-success status). An exchange's own error
document (Binance ``{"code", "msg"}``, Bybit ``retCode``/``retMsg``, OKX
``code``/``msg``, dYdX ``errors``, Hyperliquid ``{"status": "err"}``) becomes
:class:`ApiError` with the exchange's code and message, whatever the HTTP status;
the codes an exchange uses for "slow down" or "busy" are retried like a 429/5xx.

Nothing secret leaves through a message: every exception raised here is built
through :func:`redact` (user-info in URLs and token-like parameters replaced,
control characters removed, length capped), and urllib3's debug log lines,
which carry request paths with their query, pass through the same function.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Callable

import requests
import urllib3

USER_AGENT = "liqmap/0.1 (+static liquidation-heatmap site; public market data only)"

# Exchange display names for messages a reader will see.
DISPLAY = {
    "binance": "Binance",
    "binance_archive": "Binance archive (data.binance.vision)",
    "bybit": "Bybit",
    "okx": "OKX",
    "hyperliquid": "Hyperliquid",
    "dydx": "dYdX",
}


# -- what may leave the process ------------------------------------------------------
MAX_MESSAGE = 600  # characters of one error message (a status table cell, a log line)
MAX_EXCHANGE_TEXT = 200  # characters of an exchange's own error text inside it
REDACTED = "***"

# Parameter names that carry credentials: key, apiKey, api_key, X-MBX-APIKEY, token,
# access_token, secret, signature, sign, passphrase, password, auth ...
_SECRET_NAME = (r"[A-Za-z0-9_.\-]*(?:key|token|secret|signature|sign|sig|passphrase|password|passwd|pwd|auth"
                r"|credential|cookie|session)[A-Za-z0-9_.\-]*")
_SECRET_PATTERNS = (
    # scheme://user:password@host: everything up to the last "@" before whitespace, so a
    # password holding "@", ":" or "/" is covered too.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)\S*@"), r"\1" + REDACTED + "@"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}"), r"\1 " + REDACTED),
    # user:password@host without a scheme (proxy strings)
    (re.compile(r"(?<![\w/])[^\s:/@'\"]+:[^\s/@'\"]+@(?=[\w.\-\[])"), REDACTED + "@"),
    # name=value in query strings and forms, name: value in headers
    (re.compile(rf"(?i)\b({_SECRET_NAME}\s*[=:]\s*)(?![\s\"'])[^&\s#;,'\"<>)}}\]]+"), r"\1" + REDACTED),
    # "name": "value" in JSON echoed back by a server
    (re.compile(rf"(?i)([\"']{_SECRET_NAME}[\"']\s*:\s*[\"'])[^\"']*"), r"\1" + REDACTED),
)


def _plain(text: str) -> str:
    """One line of printable text: control, format (bidi, zero-width) and separator characters become spaces."""
    chars = (" " if unicodedata.category(ch)[0] == "C" or unicodedata.category(ch) in ("Zl", "Zp") else ch
             for ch in text)
    return re.sub(r"\s+", " ", "".join(chars)).strip()


def redact(text: object) -> str:
    """``text`` as one line of plain text with credentials replaced by ``***``.

    User-info in URLs (``http://user:pass@host``), token-like parameters
    (``key``, ``token``, ``secret``, ``signature``, ``apikey``, ``passphrase``,
    ``password``, ... in any case, as ``name=value``, ``name: value`` or JSON)
    and bearer tokens are redacted; control characters are removed first so
    they cannot split a secret out of a pattern's reach.
    """
    out = _plain(str(text))
    for pattern, repl in _SECRET_PATTERNS:
        out = pattern.sub(repl, out)
    return out


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)].rstrip() + "..."


class _RedactLogRecords(logging.Filter):
    """urllib3 logs request lines (path and query) at DEBUG: they go out redacted or not at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = redact(record.getMessage())
        except Exception:  # a record that cannot be formatted is not worth the risk
            return False
        record.args = None
        return True


for _name in ("urllib3.connectionpool", "urllib3.connection", "urllib3.poolmanager", "urllib3.util.retry",
              "requests"):
    logging.getLogger(_name).addFilter(_RedactLogRecords())


class HttpError(Exception):
    """A request failed; ``status`` is the HTTP status when there was one.

    The message is redacted and capped here, where every HTTP and exchange error is
    built, so no caller can forget it.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(clip(redact(message), MAX_MESSAGE))
        self.status = status


class GeoBlocked(HttpError):
    """The exchange refuses requests from this network location (HTTP 451 or 403)."""


class BadPayload(HttpError):
    """The response was not the JSON document the endpoint promises."""


class RateLimited(HttpError):
    """The exchange asked us to wait longer than the configured cap."""


class TransientError(HttpError):
    """Timeouts, connection errors or 5xx/429 that outlasted every retry."""


class NotFound(HttpError):
    """HTTP 404 (for the archive: that day's file does not exist)."""


class ApiError(HttpError):
    """The exchange answered with a well-formed error document (e.g. Bybit retCode != 0).

    ``code`` is the exchange's own error code as text ("" when it sends none).
    """

    def __init__(self, message: str, status: int | None = None, code: str = ""):
        super().__init__(message, status)
        self.code = code


class ApiRateLimited(RateLimited, ApiError):
    """An exchange's own "too many requests" code, still there after every retry."""


class ApiUnavailable(TransientError, ApiError):
    """An exchange's own "busy / try again" code, still there after every retry."""


@dataclass(frozen=True)
class ErrorEnvelope:
    """Where an exchange puts its error code and message, and which codes mean "try again"."""

    code_field: str
    msg_field: str
    ok: frozenset[str]  # codes that mean success
    rate_limited: frozenset[str] = frozenset()
    unavailable: frozenset[str] = frozenset()


# Binance: -1003 too many requests; -1001 disconnected, -1007 backend timeout, -1008 overloaded.
# Bybit: 10006 too many visits, 10018 IP rate limit; 10000 server timeout, 10016 internal error.
# OKX: 50011 / 50061 rate limit; 50001 unavailable, 50004 timeout, 50013 busy, 50026 system error.
ENVELOPES: dict[str, ErrorEnvelope] = {
    "binance": ErrorEnvelope("code", "msg", frozenset({"0", "200"}), frozenset({"-1003"}),
                             frozenset({"-1001", "-1007", "-1008"})),
    "bybit": ErrorEnvelope("retCode", "retMsg", frozenset({"0"}), frozenset({"10006", "10018"}),
                           frozenset({"10000", "10016"})),
    "okx": ErrorEnvelope("code", "msg", frozenset({"0"}), frozenset({"50011", "50061"}),
                         frozenset({"50001", "50004", "50013", "50026"})),
}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else json.dumps(value, default=str)


def exchange_error(exchange: str, doc: Any) -> tuple[str, str, str] | None:
    """(field, code, message) when ``doc`` is ``exchange``'s error document, else None."""
    if not isinstance(doc, dict):
        return None
    env = ENVELOPES.get(exchange)
    if env is not None:
        if env.code_field not in doc or _text(doc[env.code_field]).strip() in env.ok:
            return None
        return env.code_field, _text(doc[env.code_field]), _text(doc.get(env.msg_field))
    if exchange == "dydx":  # the indexer: {"errors": [{"msg": ..., "param": ..., "location": ...}]}
        errors = doc.get("errors")
        if not errors:
            return None
        first = errors[0] if isinstance(errors, list) else errors
        if isinstance(first, dict):
            return "code", _text(first.get("code")), _text(first.get("msg") or first)
        return "code", "", _text(first)
    if exchange == "hyperliquid":  # {"status": "err", "response": "..."}; plain {"error": "..."}
        if doc.get("status") == "err":
            return "status", "err", _text(doc.get("response"))
        if set(doc) == {"error"}:
            return "error", "", _text(doc["error"])
    return None


def api_error(exchange: str, path: str, doc: Any, status: int | None = None) -> ApiError | None:
    """The exception for ``exchange``'s error document ``doc`` (None when ``doc`` is no error).

    The message reads ``<Exchange> <path>: API error <field> <code>: <exchange's text>``;
    the exchange's text is plain, redacted and capped (it is shown on the public site).
    """
    found = exchange_error(exchange, doc)
    if found is None:
        return None
    field_name, code, text = found
    env = ENVELOPES.get(exchange)
    code = clip(redact(code), 24)
    text = clip(redact(text), MAX_EXCHANGE_TEXT) or "(no message)"
    where = f"{DISPLAY.get(exchange, exchange)} {clip(redact(path), 120)}".rstrip()
    label = f" {field_name} {code}" if code else ""
    message = f"{where}: API error{label}: {text}"
    cls = ApiError
    if env is not None and code in env.rate_limited:
        cls = ApiRateLimited
    elif env is not None and code in env.unavailable:
        cls = ApiUnavailable
    return cls(message, status, code)


def raise_api_error(exchange: str, path: str, doc: Any) -> Any:
    """``doc`` unchanged, or the exchange's error document raised as :class:`ApiError`."""
    err = api_error(exchange, path, doc)
    if err is not None:
        raise err
    return doc


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


# Published public-endpoint limits (per IP), expressed as token buckets.
# Binance USD-M: 2400 request weight per minute (klines weigh 1-10 by limit);
#   /futures/data/* : 1000 requests per 5 minutes.
# Bybit v5: 600 requests per 5 seconds per IP (we stay far below it).
# OKX v5: per endpoint, e.g. history-candles 20/2s, rubik OI 5/2s, funding history 10/2s,
#   liquidation-orders 40/2s, instruments 20/2s.
# Hyperliquid: 1200 weight per minute; most /info requests weigh 20.
# dYdX indexer: not published as a hard number; 10/s is a polite ceiling.
LIMITS: dict[str, dict[str, Limit]] = {
    "binance": {"": Limit(2400, 40), "/futures/data/": Limit(1000 / 5, 1000 / 300)},
    "binance_archive": {"": Limit(20, 10)},
    "bybit": {"": Limit(100, 20)},
    "okx": {
        "": Limit(10, 5),
        "/api/v5/rubik/": Limit(5, 2.5),
        "/api/v5/public/funding-rate-history": Limit(10, 5),
        "/api/v5/market/history-candles": Limit(20, 10),
        "/api/v5/public/liquidation-orders": Limit(40, 20),
    },
    "hyperliquid": {"": Limit(1200, 20)},
    "dydx": {"": Limit(20, 10)},
}


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
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.exchange = exchange
        self.name = DISPLAY.get(exchange, exchange)
        self.base_url = base_url.rstrip("/")
        self.session = session or new_session()
        self.policy = policy or RetryPolicy()
        self.limiter = limiter if limiter is not None else RateLimiter(LIMITS.get(exchange, {}))
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

    def client(self, exchange: str, base_url: str) -> HttpClient:
        key = f"{exchange} {base_url}"
        if key not in self.clients:
            limiter = RateLimiter(LIMITS.get(exchange, {}) if self.rate_limits else {})
            self.clients[key] = HttpClient(exchange, base_url, session=self.session, policy=self.policy, limiter=limiter)
        return self.clients[key]

    def close(self) -> None:
        self.session.close()
