"""Checks on the command line before Hydra composes anything.

Hydra reports a missing config-group option (scheduler=bogus) or an override
it cannot parse in many lines and exits 1; we want one line that lists what is
accepted, and exit 2. Only config-group choices and syntax are checked here;
values are validate.py's job.
"""
from __future__ import annotations

from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from sweeper.errors import ConfigError

GROUPS = ("model", "data", "scheduler", "lora")
_FLAGS_WITH_VALUE = {"--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn",
                     "--cfg", "-c", "--package", "-p", "--info", "--experimental-rerun"}


def override_args(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _FLAGS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            out.append(arg)
    return out


def config_dirs(argv: list[str], default: Path) -> list[Path]:
    dirs = [default]
    for flag in ("--config-dir", "-cd"):
        if flag in argv and argv.index(flag) + 1 < len(argv):
            dirs.append(Path(argv[argv.index(flag) + 1]))
    dirs += [Path(a.split("=", 1)[1]) for a in argv if a.startswith("--config-dir=")]
    return dirs


def options(group: str, dirs: list[Path]) -> list[str]:
    return sorted({p.stem for d in dirs for p in (d / group).glob("*.yaml")})


def check_argv(argv: list[str], default_conf: Path) -> None:
    parser = OverridesParser.create()
    dirs = config_dirs(argv, default_conf)
    for arg in override_args(argv):
        try:
            override = parser.parse_override(arg)
        except HydraException as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ConfigError("", f"cannot parse override {arg!r}: {first}") from None
        group = override.key_or_group.lstrip("+~")
        if group not in GROUPS or override.is_delete():
            continue
        if override.is_sweep_override():
            if not (override.is_choice_sweep() or override.is_range_sweep()):
                raise ConfigError(group, f"{arg!r}: a config group takes a list of options, not a range; "
                                  f"accepted: {', '.join(options(group, dirs))}")
            values = list(override.sweep_string_iterator())
        else:
            values = [override.get_value_element_as_str()]
        accepted = options(group, dirs)
        for value in values:
            if value not in accepted:
                raise ConfigError(group, f"{value!r} is not accepted; accepted: {', '.join(accepted)}")


def run_checked(app) -> None:
    """Runs a Hydra app after checking its command line, turning bad input into one line + exit 2."""
    import sys

    from sweeper.errors import exit_bad_input
    from sweeper.paths import CONF_DIR

    try:
        check_argv(sys.argv[1:], CONF_DIR)
    except ConfigError as err:
        exit_bad_input(err)
    app()
