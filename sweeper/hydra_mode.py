"""Hydra's run mode without composing the whole config once just to read it.

Before it runs or sweeps, Hydra composes the full config to read `hydra.mode` (a config may
ask to sweep without `-m`), then composes it again to run: ~0.15 s of every sweep's, single
run's and pool or SLURM trial process's start on 2 cores. lr-sweeper's own configs never set
`hydra.mode` (tests/test_hydra_mode.py composes them to check), so when the command line names
no config of the user's and no `hydra.mode=`, the mode is what `-m` says, as Hydra decides it
when the config is silent. Any other command gets Hydra's own look.
"""
from __future__ import annotations

# private, under the hydra-core<1.4 pin: tests/test_hydra_mode.py fails clearly if it moves
from hydra._internal.hydra import Hydra

OUR_CONFIG_NAME = "config"  # conf/config.yaml; a pool or SLURM trial's command names it with --config-name
_HYDRA_GET_MODE = Hydra.get_mode
_command = {"ours": False}  # the command line of this process's run_checked


def only_our_configs(argv: list[str]) -> bool:
    """True when the config composed is lr-sweeper's own and nothing on the line could set hydra.mode:
    no config dir or path (argparse takes any prefix, --config-d), no config name but ours, no
    `hydra.mode=`, `hydra={...}` or extra `hydra.searchpath`."""
    args = iter(argv)
    for arg in args:
        flag, eq, value = arg.partition("=")
        if flag.startswith("--config") or flag in ("-cd", "-cp", "-cn"):
            value = value if eq else next(args, "")
            names_config = flag == "-cn" or (len(flag) > len("--config-") and "--config-name".startswith(flag))
            if not names_config or value != OUR_CONFIG_NAME:
                return False
        elif flag.lstrip("+~") == "hydra" or flag.lstrip("+~").startswith(("hydra.mode", "hydra.searchpath")):
            return False
    return True


def _get_mode(self, config_name, overrides):
    if _command["ours"] and only_our_configs(overrides):
        return None  # the config is silent: Hydra then runs, or sweeps with -m
    return _HYDRA_GET_MODE(self, config_name, overrides)


def read_mode_from_flags(argv: list[str]) -> None:
    """For the command `argv` about to run in this process: Hydra takes its run mode from -m alone
    when `only_our_configs(argv)`, and looks in the composed config otherwise."""
    _command["ours"] = only_our_configs(argv)
    Hydra.get_mode = _get_mode
