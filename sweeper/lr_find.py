"""`python -m sweeper.lr_find [overrides]`: the LR range test on any config.

Writes lr_find.png (loss against lr) and lr_find.json in its run directory and
prints the suggested lr and search interval. In a sweep, `lr=auto` runs it first
and searches the interval it suggests. Settings: lr_find.min_lr, lr_find.max_lr,
lr_find.steps.
"""
from __future__ import annotations


import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from sweeper.cli_checks import run_checked
from sweeper.core.contract import load_backend, validate
from sweeper.core.errors import ConfigError, exit_bad_input
from sweeper.core.layout import CONF_DIR, register_resolvers

register_resolvers()


@hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
def run(cfg: DictConfig) -> None:
    run_dir = HydraConfig.get().runtime.output_dir
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    try:
        backend = load_backend(plain)
        validate(plain, backend)
        found = backend.find_lr(plain, run_dir)
    except ConfigError as err:
        exit_bad_input(err)
    except ValueError as err:
        exit_bad_input(ConfigError("lr_find.max_lr", str(err)))
    low, high = found["interval"]
    print(f"suggested lr: {found['suggested_lr']:.3g} ({found['rule']})")
    print(f"suggested search interval: {low:.3g} .. {high:.3g}  ->  'lr=tag(log,interval({low:.3g},{high:.3g}))'")
    print(f"plot: {run_dir}/lr_find.png", flush=True)


def main() -> None:
    run_checked(run)


if __name__ == "__main__":
    main()
