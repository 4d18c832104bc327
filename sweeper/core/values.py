"""Reading one typed value out of a config, with the one-line error that names the key and what is
accepted. The guides' rules (rules.py) and the backends' checks are written with these."""
from __future__ import annotations

import math
from typing import Any, Mapping

from sweeper.core.errors import ConfigError


def number(cfg: Mapping, key: str, accepted: str, *, integer: bool = False) -> float:
    """A finite number (an integer if asked); booleans are not numbers here, though Python says so."""
    value = get_dotted(cfg, key)
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    try:
        ok = ok and math.isfinite(float(value)) and (not integer or float(value).is_integer())
    except OverflowError:  # an int too large for a float
        ok = False
    if not ok:
        raise ConfigError(key, f"{show(value)} is not accepted; accepted: {accepted}")
    return int(value) if integer else float(value)


def show(value: Any) -> str:
    """A value as an error shows it: short, and on one line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 40 else text[:37] + "..."


def get_dotted(cfg: Mapping, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def positive_int(cfg: Mapping, key: str) -> int:
    value = number(cfg, key, "an integer >= 1", integer=True)
    if value < 1:
        raise ConfigError(key, f"{value} is not accepted; accepted: an integer >= 1")
    return value


def at_least(cfg: Mapping, key: str, low: float, accepted: str, *, integer: bool = False,
              strict: bool = False) -> float:
    """A finite number >= low (> low when strict)."""
    value = number(cfg, key, accepted, integer=integer)
    if value < low or (strict and value == low):
        raise ConfigError(key, f"{value} is not accepted; accepted: {accepted}")
    return value


def between(cfg: Mapping, key: str, low: float, high: float, *, strict_low: bool = False) -> float:
    """A finite number in [low, high] ((low, high] when strict_low)."""
    accepted = f"a number {'>' if strict_low else '>='} {low:g} and <= {high:g}"
    value = at_least(cfg, key, low, accepted, strict=strict_low)
    if value > high:
        raise ConfigError(key, f"{value:g} is not accepted; accepted: {accepted}")
    return value


def choice(cfg: Mapping, key: str, accepted) -> str:
    value = get_dotted(cfg, key)
    if not isinstance(value, str) or value not in accepted:
        raise ConfigError(key, f"{show(value)} is not accepted; accepted: {', '.join(accepted)}")
    return value
