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

_USER_CONFIG_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")
_HYDRA_GET_MODE = Hydra.get_mode
_command = {"ours": False}  # the command line of this process's run_checked


def only_our_configs(argv: list[str]) -> bool:
    """True when the config composed is lr-sweeper's own and nothing on the line sets hydra.mode."""
    return not any(arg.split("=", 1)[0] in _USER_CONFIG_FLAGS or "hydra.mode" in arg for arg in argv)


def _get_mode(self, config_name, overrides):
    if _command["ours"] and only_our_configs(overrides):
        return None  # the config is silent: Hydra then runs, or sweeps with -m
    return _HYDRA_GET_MODE(self, config_name, overrides)


def read_mode_from_flags(argv: list[str]) -> None:
    """For the command `argv` about to run in this process: Hydra takes its run mode from -m alone
    when `only_our_configs(argv)`, and looks in the composed config otherwise."""
    _command["ours"] = only_our_configs(argv)
    Hydra.get_mode = _get_mode
