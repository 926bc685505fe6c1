"""Input checks in one style: each raises ``ValueError`` naming the field, the value and what is allowed.

The lowest floor of the package (imports nothing from it), so configs on every floor validate alike::

    check_int("tau", 0)                      # ValueError: tau=0 must be an integer >= 1
    check_int("width", 5000, 1, 4096)        # ValueError: width=5000 must be an integer in [1, 4096]
    check_float_range("gamma", 2.0, 0, 1, low_open=True)   # gamma=2.0 must be a finite number in (0, 1]
    check_choice("critic", "mappo", ("independent", "centralised"))
                                             # critic='mappo' is not valid; allowed: independent, centralised
    require("num_steps", 60, 60 % 8 == 0, "a multiple of seq_len=8")   # any other rule, same message shape

``field`` is how the user wrote it: a config field (``IPPOConfig.lr``), a flag (``--seeds``) or an argument.
Each check returns the value it accepted, so ``x = check_int("x", x)`` reads as one line.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Optional


def require(field: str, value: Any, ok: bool, allowed: str) -> Any:
    """``value`` if ``ok``; else ``ValueError("<field>=<value!r> must be <allowed>")``."""
    if not ok:
        raise ValueError(f"{field}={value!r} must be {allowed}")
    return value


def _num(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _interval(low, high, low_open: bool = False, high_open: bool = False) -> str:
    """``>= 1``, ``> 0``, ``<= 10``, ``in [0, 1]``, ``in (0, 1]`` ...; empty when both ends are None."""
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{_num(low)}, {_num(high)}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {_num(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_num(high)}"
    return ""


def is_int(value: Any) -> bool:
    """True for a Python integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(field: str, value: Any, low: Optional[int] = 1, high: Optional[int] = None, note: str = "") -> int:
    """``value`` if it is an integer in ``[low, high]`` (an end that is None is open); else ``ValueError``
    naming ``field``, ``value`` and the range, then ``note`` (e.g. ``" (or None: chosen from free memory)"``)."""
    ok = is_int(value) and (low is None or value >= low) and (high is None or value <= high)
    return require(field, value, ok, f"an integer {_interval(low, high)}".rstrip() + note)


def check_float_range(field: str, value: Any, low: Optional[float] = None, high: Optional[float] = None, *,
                      low_open: bool = False, high_open: bool = False, note: str = "") -> float:
    """``value`` if it is a finite real number (not a bool) in the interval from ``low`` to ``high`` (each end
    closed unless ``low_open`` / ``high_open``; None: unbounded); else ``ValueError`` naming the interval."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or value > low or (value == low and not low_open))
    ok = ok and (high is None or value < high or (value == high and not high_open))
    return require(field, value, ok, f"a finite number {_interval(low, high, low_open, high_open)}".rstrip() + note)


def check_choice(field: str, value: Any, allowed: Iterable) -> Any:
    """``value`` if it is one of ``allowed``; else ``ValueError`` listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{field}={value!r} is not valid; allowed: {', '.join(map(str, allowed))}")
    return value
