"""Hydra sweep overrides -> an Optuna search space, and trial params -> overrides.

    lr=1e-5,3e-4                      categorical (a grid axis)
    'lr=choice(1e-5,3e-4)'            categorical
    'lora.r=range(8,33,8)'            categorical over 8,16,24,32 (a grid axis)
    'lr=interval(1e-5,1e-3)'          float uniform
    'lr=tag(log,interval(1e-5,1e-3))' float log-uniform
    'max_steps=interval(20,60)'       int uniform (both ends integers)
    scheduler=cosine                  fixed: passed through to every trial
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from itertools import product

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override
from hydra.errors import HydraException
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from sweeper.core.errors import ConfigError


@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)       # overrides every trial gets as typed
    prefixes: dict[str, str] = field(default_factory=dict)  # "+" / "++" for params that add keys

    @property
    def is_grid(self) -> bool:
        return bool(self.distributions) and all(
            isinstance(d, CategoricalDistribution) for d in self.distributions.values())

    def grid(self) -> list[dict]:
        names = sorted(self.distributions)
        axes = [self.distributions[n].choices for n in names]
        return [dict(zip(names, point)) for point in product(*axes)]

    def overrides(self, params: dict) -> list[str]:
        return self.fixed + [f"{self.prefixes.get(k, '')}{k}={format_value(v)}" for k, v in sorted(params.items())]


def format_value(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and not re.fullmatch(r"[\w./:-]+", value):
        return "'" + value.replace("'", "\\'") + "'"
    return "null" if value is None else str(value)


def _distribution(override: Override, raw: str) -> BaseDistribution:
    key = override.get_key_element()
    if override.is_interval_sweep():
        sweep = override.value()
        assert isinstance(sweep, IntervalSweep)
        log = "log" in sweep.tags
        low, high = sweep.start, sweep.end
        if low >= high:
            raise ConfigError(key, f"{raw!r}: interval start must be below its end")
        if log and low <= 0:
            raise ConfigError(key, f"{raw!r}: a log interval needs a start > 0; accepted: "
                              "tag(log, interval(LOW, HIGH)) with 0 < LOW < HIGH")
        if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
            return IntDistribution(low, high, log=log)
        return FloatDistribution(float(low), float(high), log=log)
    values = [v for v in override.sweep_iterator()] if override.is_range_sweep() else list(override.value().list)
    if not values:
        raise ConfigError(key, f"{raw!r}: an empty list of values")
    if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        raise ConfigError(key, f"{raw!r}: sweep values must be numbers, strings, booleans or null")
    return CategoricalDistribution(values)


def parse(arguments: list[str]) -> SearchSpace:
    parser = OverridesParser.create()
    space = SearchSpace()
    for raw in arguments:
        try:
            override = parser.parse_override(raw)
        except HydraException as err:
            raise ConfigError("", f"cannot parse override {raw!r}: {str(err).strip().splitlines()[0]}") from None
        if not override.is_sweep_override():
            space.fixed.append(raw)
            continue
        if override.is_hydra_override():
            raise ConfigError(override.get_key_element(), "hydra.* settings cannot be swept")
        name = override.key_or_group
        if override.package:
            name = f"{name}@{override.package}"
        space.prefixes[name] = "++" if override.is_force_add() else "+" if override.is_add() else ""
        space.distributions[name] = _distribution(override, raw)
    return space


def integer_axes(space: SearchSpace, base: dict) -> None:
    """Hydra intervals are floats; an interval over an integer setting samples integers."""
    for name, dist in list(space.distributions.items()):
        node = base
        for part in name.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(dist, FloatDistribution) and isinstance(node, int) and not isinstance(node, bool):
            if not (float(dist.low).is_integer() and float(dist.high).is_integer()):
                raise ConfigError(name, f"interval({dist.low}, {dist.high}) over an integer setting needs "
                                  "integer ends")
            space.distributions[name] = IntDistribution(int(dist.low), int(dist.high), log=dist.log)


def default_sweep_name(arguments: list[str], config_name: str) -> str:
    """Same command, same name: so re-running it continues the same study."""
    swept = sorted(a.split("=", 1)[0].lstrip("+~") for a in arguments if "=" in a)
    slug = "-".join(re.sub(r"[^\w]+", "_", k) for k in swept[:3]) or "sweep"
    digest = hashlib.sha1("\n".join([config_name] + sorted(arguments)).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"
