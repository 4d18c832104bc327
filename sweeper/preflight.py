"""Bad input fails before the study exists: the base point fully, then every other swept value.

Hydra composes each point as a trial would see it (config groups included); the
backend checks what only it can (model, data, LoRA modules) without torch.
"""
from __future__ import annotations

import copy

import optuna
from hydra.errors import HydraException
from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from sweeper import search_space as ss
from sweeper.cli_checks import GROUPS, compose_problem
from sweeper.composer import Composer
from sweeper.core.contract import load_backend, validate
from sweeper.core.errors import ConfigError


class Preflight:
    def __init__(self, composer: Composer, space: ss.SearchSpace):
        self.composer, self.space = composer, space

    def compose(self, overrides: list[str]) -> dict:
        """A trial's config as plain data, composed as an in-process trial's is (the sweep's first
        trial reuses the composition)."""
        try:
            cfg = self.composer.compose(overrides)
        except HydraException as err:
            raise ConfigError("", " ".join(str(err).split())[:300]) from None
        except OmegaConfBaseException as err:  # a value the schema refuses, set into the composed config
            raise ConfigError("", compose_problem(err)) from None
        with open_dict(cfg):
            del cfg["hydra"]
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)

    def point_overrides(self, index: int) -> list[str]:
        """Overrides for the index-th choice of every axis (interval axes at their ends)."""
        out = []
        for name, dist in self.space.distributions.items():
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                value = dist.choices[min(index, len(dist.choices) - 1)]
            else:
                value = dist.low if index == 0 else dist.high
            out.append(f"{self.space.prefixes.get(name, '')}{name}={ss.format_value(value)}")
        return out

    def base(self) -> dict:
        return self.compose(self.space.fixed + self.point_overrides(0))

    def check(self, base: dict) -> None:
        """The base point fully (data files read), then each other value one axis at a time
        (choices, interval ends). A value is set straight into the base config; only a
        config-group choice (scheduler=linear) needs Hydra to compose it."""
        backend = load_backend(base)
        validate(base, backend)
        for name, dist in self.space.distributions.items():
            values = ss.axis_values(dist) if name in self.space.ranges else dist.choices \
                if isinstance(dist, optuna.distributions.CategoricalDistribution) else [dist.low, dist.high]
            for value in values:
                cfg = self.compose(self.space.overrides({name: value})) if name in GROUPS \
                    else _with_value(base, name, value)
                validate(cfg, backend, read_data=False)


def _with_value(base: dict, dotted: str, value) -> dict:
    cfg = copy.deepcopy(base)
    node = cfg
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return cfg
