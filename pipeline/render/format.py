"""How numbers, times and untrusted text appear on the site: one set of formatters, one Jinja environment.

Every page (asset, home, methodology, FAQ, accuracy, archive) renders through
:func:`environment`, so a filter means the same thing everywhere. Missing or
non-finite values print as an en dash.

Untrusted text (names from the registry, messages from exchanges) goes through
``md``: HTML-escaped by the autoescaping environment, then Markdown
punctuation backslash-escaped so it can neither format the page nor open an
attribute list (``{: ...}``).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from pipeline import paths

DASH = "–"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|])")


def _ok(x: Any) -> bool:
    """A finite number (numpy scalars included)."""
    try:
        return x is not None and not isinstance(x, str) and math.isfinite(x)
    except TypeError:
        return False


def md(value: Any):
    """Text safe inside Markdown and HTML: HTML-escaped, Markdown punctuation backslash-escaped."""
    from markupsafe import Markup, escape

    return Markup(_MD_SPECIAL.sub(r"\\\1", str(escape(str(value)))))


def nav_title(value: Any) -> str:
    """A navigation title: Material renders nav titles as raw HTML, so they are HTML-escaped here."""
    from markupsafe import escape

    return str(escape(str(value)))


def fmt_time(ms: int | float | None) -> str:
    """Epoch milliseconds as ``YYYY-MM-DD HH:MM UTC``."""
    if not _ok(ms):
        return DASH
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def ts(value: Any) -> str:
    """A stored timestamp (datetime or text) as ``YYYY-MM-DD HH:MM UTC``."""
    if value is None:
        return DASH
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def usd(x: float | None, price: float | None = None) -> str:
    """A price in dollars, with decimals that suit its size (or the size of ``price``)."""
    if not _ok(x):
        return DASH
    ref = abs(price if price is not None else x)
    return f"${x:,.0f}" if ref >= 1000 else f"${x:,.2f}" if ref >= 10 else f"${x:,.4f}"


def money(x: float | None) -> str:
    """A notional in dollars with a unit: $1.23B, $45.60M, $7.80k."""
    if not _ok(x):
        return DASH
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"${x / div:,.2f}{suf}"
    return f"${x:,.0f}"


def pct(x: float | None) -> str:
    """A signed percentage given in percent (1.5 -> +1.50 %)."""
    return f"{x:+.2f} %" if _ok(x) else DASH


def pct_ratio(x: float | None) -> str:
    """A signed ratio as a percentage (0.012 -> +1.2 %)."""
    return f"{x * 100:+.1f} %" if _ok(x) else DASH


def rate(x: float | None) -> str:
    """Funding per interval: small numbers, four decimals of a percent."""
    return f"{x * 100:+.4f} %" if _ok(x) else DASH


def share(x: float | None, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage (0.123 -> 12.3 %)."""
    return f"{100 * x:.{digits}f} %" if _ok(x) else DASH


def share_ci(ci, digits: int = 1) -> str:
    if not ci or not _ok(ci[0]) or not _ok(ci[1]):
        return DASH
    return f"{100 * ci[0]:.{digits}f}–{100 * ci[1]:.{digits}f} %"


def ratio(x: float | None) -> str:
    return f"{x:.2f}" if _ok(x) else DASH


def ratio_ci(ci) -> str:
    if not ci or not _ok(ci[0]) or not _ok(ci[1]):
        return DASH
    hi = f"{ci[1]:.2f}" if ci[1] < 100 else f"{ci[1]:.0f}"
    return f"{ci[0]:.2f}–{hi}"


def environment():
    """The one Jinja environment of the site: templates from ``site/templates``, every value autoescaped."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.TEMPLATES)),
        autoescape=True,  # every value is HTML-escaped, Markdown or not
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.tests["finite"] = _ok
    env.filters.update(md=md, usd=usd, money=money, pct=pct, pct_ratio=pct_ratio, rate=rate, when=fmt_time, ts=ts,
                       share=share, share_ci=share_ci, ratio=ratio, ratio_ci=ratio_ci)
    return env
