"""What may leave the process when a request fails: redacted, plain, capped messages, and the error types.

Nothing secret leaves through a message: every exception here is built through
:func:`redact` (user-info in URLs and token-like parameters replaced, control
characters removed, length capped), and urllib3's debug log lines, which carry
request paths with their query, pass through the same function.

An exchange's own error document (Binance ``{"code", "msg"}``, Bybit
``retCode``/``retMsg``, OKX ``code``/``msg``, dYdX ``errors``, Hyperliquid
``{"status": "err"}``) becomes :class:`ApiError` with the exchange's code and
message, whatever the HTTP status; the codes an exchange uses for "slow down" or
"busy" become :class:`ApiRateLimited` / :class:`ApiUnavailable`, retried like a 429/5xx.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from pipeline.venues import display

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
    where = f"{display(exchange)} {clip(redact(path), 120)}".rstrip()
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
