"""Hydra sweep overrides -> an Optuna search space, and trial params -> overrides.

    lr=1e-5,3e-4                      categorical (a grid axis); repeated values dropped, with a warning
    'lr=choice(1e-5,3e-4)'            categorical (a grid axis)
    'lora.r=range(8,33,8)'            integers 8,16,24,32: IntDistribution(8, 32, step=8) (a grid axis)
    'lr=interval(1e-5,1e-3)'          float uniform
    'lr=tag(log,interval(1e-5,1e-3))' float log-uniform
    'max_steps=interval(20,60)'       int uniform (both ends integers)
    scheduler=cosine                  fixed: passed through to every trial

An integer range() is an ordered integer axis, as in hydra-optuna-sweeper: TPE, CMA-ES, GP and
the importance evaluators see 16 between 8 and 24 (a categorical would hide that), and a grid
still runs every point (SearchSpace.grid enumerates it). A range over floats stays categorical
(float steps do not land on exact values). glob() and tags other than `log` are refused.
"""
from __future__ import annotations

import hashlib
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep, Override
from hydra.errors import HydraException
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from sweeper.core.errors import ConfigError

log = logging.getLogger("sweeper")
TAGS = ("log",)  # the only tag a sweep understands: tag(log, interval(LOW, HIGH))
GRAMMAR = "a,b,c | choice(a,b) | range(start,stop[,step]) | interval(low,high) | tag(log,interval(low,high))"

@dataclass
class SearchSpace:
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)       # overrides every trial gets as typed
    prefixes: dict[str, str] = field(default_factory=dict)  # "+" / "++" for params that add keys
    ranges: set[str] = field(default_factory=set)  # integer range() axes: IntDistributions with grid points

    @property
    def is_grid(self) -> bool:
        """Every swept value is a list; nothing swept is a grid of one point (a single run, not n_trials
        draws of the same config)."""
        return all(isinstance(d, CategoricalDistribution) or n in self.ranges for n, d in self.distributions.items())

    def grid(self) -> list[dict]:
        names = sorted(self.distributions)
        axes = [axis_values(self.distributions[n]) for n in names]
        return [dict(zip(names, point)) for point in product(*axes)]

    def overrides(self, params: dict) -> list[str]:
        return self.fixed + [f"{self.prefixes.get(k, '')}{k}={format_value(v)}" for k, v in sorted(params.items())]


def axis_values(dist: BaseDistribution, most: int = 10_000) -> list:
    """Every value of a discrete axis (a list, a range); an interval's two ends."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution) and (dist.high - dist.low) // dist.step < most:
        return list(range(dist.low, dist.high + 1, dist.step))
    return [dist.low, dist.high]


def format_value(value) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and not re.fullmatch(r"[\w./:-]+", value):
        return "'" + value.replace("'", "\\'") + "'"
    return "null" if value is None else str(value)


def check_grammar(override: Override, raw: str) -> None:
    """What the Optuna space cannot take, refused in one line: glob() (Hydra expands it only with a
    config loader) and tags other than log. Safe to call before anything iterates the sweep."""
    if not override.is_sweep_override():
        return
    key, sweep = override.get_key_element(), override.value()
    if isinstance(sweep, Glob):
        raise ConfigError(key, f"{raw!r}: glob() is not supported in a sweep; accepted: {GRAMMAR}")
    tags = set(getattr(sweep, "tags", None) or ())
    unknown = sorted(tags - set(TAGS))
    if unknown:
        raise ConfigError(key, f"{raw!r}: unknown tag {', '.join(unknown)}; accepted: "
                          f"{', '.join(TAGS)}, as tag(log, interval(LOW, HIGH))")
    if tags and not isinstance(sweep, IntervalSweep):
        raise ConfigError(key, f"{raw!r}: tag(log, ...) applies to an interval only; accepted: "
                          "tag(log, interval(LOW, HIGH))")


def _interval(key: str, raw: str, sweep: IntervalSweep) -> BaseDistribution:
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


def _unique(key: str, values: list) -> list:
    """Repeated values dropped (1e-3 and 0.001 are one value; 1 and 1.0 are two), with a warning."""
    seen, out, repeated = set(), [], []
    for value in values:
        marker = (type(value).__name__, value)
        if marker in seen:
            repeated.append(value)
        else:
            seen.add(marker)
            out.append(value)
    if repeated:
        log.warning("%s: repeated values dropped: %s (each value runs once)", key,
                    ", ".join(format_value(v) for v in repeated))
    return out


def _distribution(override: Override, raw: str) -> tuple[BaseDistribution, bool]:
    """The axis, and whether it is an integer range (an ordered grid axis)."""
    key, sweep = override.get_key_element(), override.value()
    check_grammar(override, raw)
    if override.is_interval_sweep():
        return _interval(key, raw, sweep), False
    values = list(override.sweep_iterator()) if override.is_range_sweep() else list(sweep.list)
    if not values:
        raise ConfigError(key, f"{raw!r}: an empty list of values")
    if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        raise ConfigError(key, f"{raw!r}: sweep values must be numbers, strings, booleans or null")
    if override.is_range_sweep() and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return IntDistribution(min(values), max(values), step=abs(int(sweep.step)) or 1), True
    return CategoricalDistribution(_unique(key, values)), False


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
        space.distributions[name], is_range = _distribution(override, raw)
        if is_range:
            space.ranges.add(name)
    return space


def integer_axes(space: SearchSpace, is_integer: Callable[[str, float, float], bool]) -> None:
    """Hydra intervals are floats; an interval over an integer setting samples integers. Decided
    from the schema (is_integer(name, low, high)), before any point is composed."""
    for name, dist in list(space.distributions.items()):
        if isinstance(dist, FloatDistribution) and is_integer(name, dist.low, dist.high):
            if not (float(dist.low).is_integer() and float(dist.high).is_integer()):
                raise ConfigError(name, f"interval({dist.low:g}, {dist.high:g}) over an integer setting needs "
                                  f"integer ends; accepted: interval({math.ceil(dist.low)}, {math.floor(dist.high)})")
            space.distributions[name] = IntDistribution(int(dist.low), int(dist.high), log=dist.log)


def default_sweep_name(space: SearchSpace, arguments: list[str], config_name: str) -> str:
    """Named by what is swept (lr-scheduler-<digest>), the digest of the whole command: the same
    command continues the same study, another one makes another."""
    slug = "-".join(re.sub(r"[^\w]+", "_", k) for k in sorted(space.distributions)[:3]) or "sweep"
    digest = hashlib.sha1("\n".join([config_name] + sorted(arguments)).encode()).hexdigest()[:8]
    return f"{slug}-{digest}"
