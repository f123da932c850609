"""Time conversions in one place: epoch milliseconds, UTC datetimes and ISO-8601 text.

Conventions: epoch milliseconds inside computations; naive ``datetime`` means UTC
(the store's convention); ISO text without an offset means UTC.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

EPOCH = dt.datetime(1970, 1, 1)
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def utc(t: dt.datetime | int | float | str) -> dt.datetime:
    """A timezone-aware UTC datetime from a datetime (naive = UTC), epoch ms or ISO text."""
    if isinstance(t, dt.datetime):
        return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    if isinstance(t, (int, float, np.integer, np.floating)) and not isinstance(t, bool):
        return dt.datetime.fromtimestamp(float(t) / 1000.0, tz=dt.UTC)
    if isinstance(t, str):
        return utc(dt.datetime.fromisoformat(t.replace("Z", "+00:00")))
    raise TypeError(f"not a time: {t!r}")


def to_ms(t) -> int | None:
    """Epoch milliseconds of anything :func:`utc` takes; None when it is not a time."""
    try:
        return int(round(utc(t).timestamp() * 1000))
    except (TypeError, ValueError):
        return None


def iso_z(t) -> str:
    """``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    t = utc(t)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{t.microsecond:06d}" if t.microsecond else "") + "Z"


def ms_to_dt(ms: int) -> dt.datetime:
    """Epoch milliseconds -> naive UTC datetime (the store's convention)."""
    return EPOCH + dt.timedelta(milliseconds=int(ms))


def dt_to_ms(t: dt.datetime) -> int:
    """A datetime (naive = UTC) -> epoch milliseconds, exactly."""
    if t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return int((t - EPOCH) / dt.timedelta(milliseconds=1))


def ms_to_iso(ms: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (what exchange APIs take)."""
    return ms_to_dt(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def parse_iso_ms(text: str) -> int:
    """ISO-8601 text -> epoch milliseconds; no offset means UTC. Raises ValueError."""
    return dt_to_ms(utc(dt.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))))
