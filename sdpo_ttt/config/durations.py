"""Durations as users write them (--max-time 90s, 30m, 2h, 1h30m) and back: pure helpers the config checks with and
run/budgets.py spends by."""

from __future__ import annotations

import re

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")


def parse_duration(text: str | float | int) -> float:
    """Seconds in '90s', '30m', '2h', '1h30m', '1.5h' or a plain number of seconds. ValueError with the accepted forms."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        s = str(text).strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", s):
            seconds = float(s)
        elif re.fullmatch(r"(?:\d+(?:\.\d+)?[smhd])+", s):
            seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(s))
        else:
            raise ValueError(f"{text!r} is not a duration: write e.g. 90s, 30m, 2h or 1h30m (a plain number is seconds)")
    if seconds <= 0:
        raise ValueError(f"{text!r}: a time budget must be more than 0 seconds")
    return seconds


def format_duration(seconds: float) -> str:
    """'45s', '12m', '2h', '1h30m' (rounded to whole seconds)."""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{sec}s" if sec or s == 0 else ""]
    return "".join(parts)
