"""Checks on the command line before Hydra composes anything.

Hydra reports a missing config-group option (scheduler=bogus), an unknown key
(lr_sceduler=cosine) or an override it cannot parse in many lines and exits 1,
and it accepts `+lora_rank=64` silently although nothing reads that key; we want
one line that lists what is accepted (or the closest known key), and exit 2.
Only keys, config-group choices and syntax are checked here; values are
validate.py's job.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from sweeper.core.errors import ConfigError, Problems
from sweeper.core.schema import type_problem
from sweeper.search_space import check_grammar

GROUPS = ("model", "data", "scheduler", "lora", "trainer")
_FLAGS_WITH_VALUE = {"--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn",
                     "--cfg", "-c", "--package", "-p", "--info", "--experimental-rerun",
                     "--shell-completion", "-sc"}  # install=bash: a flag's value, not an override


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


def _flat_keys(node, prefix: str = "") -> set[str]:
    keys = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("defaults", "hydra") and not prefix:
                continue
            keys.add(prefix + str(key))
            keys |= _flat_keys(value, f"{prefix}{key}.")
    return keys


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: every config file is read at each start


def _yaml(path: Path):
    try:
        return yaml.load(path.read_text(), Loader=_SAFE_LOADER)
    except (OSError, yaml.YAMLError):
        return None  # Hydra says what is wrong with the file itself


def known_keys(dirs: list[Path], config_name: str) -> set[str]:
    """Every key the composed config can hold: the primary config's, and each group option's."""
    keys = set()
    for d in dirs:
        keys |= _flat_keys(_yaml(d / f"{config_name}.yaml"))
        for group in (p for p in d.iterdir() if p.is_dir() and p.name != "hydra") if d.is_dir() else ():
            keys.add(group.name)
            keys |= {f"{group.name}.{k}" for option in group.glob("*.yaml") for k in _flat_keys(_yaml(option))}
    return keys


def _config_name(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg in ("--config-name", "-cn") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config-name="):
            return arg.split("=", 1)[1]
    return "config"


def check_key(override, known: set[str], sweeper_keys: set[str]) -> None:
    key = override.key_or_group
    if override.package is not None or key == "hydra" or key.startswith(("hydra/", "hydra.")) \
            and not key.startswith("hydra.sweeper."):
        return  # Hydra's own settings: Hydra checks them
    pool = {f"hydra.sweeper.{k}" for k in sweeper_keys} if key.startswith("hydra.sweeper.") else known
    if key in pool:
        if override.is_add() and not override.is_force_add() and "." not in key and key not in GROUPS:
            raise ConfigError(key, f"is already in the config; accepted: {key}=VALUE (drop the '+')")
        return
    close = difflib.get_close_matches(key, sorted(pool), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see `python -m sweeper --cfg job` for the keys"
    raise ConfigError(key, f"not a known key, so nothing would read it; {hint}")


def check_type(override) -> None:
    """A value the schema's type for that key cannot take (batch_size=abc, max_steps=1.5)."""
    key = override.key_or_group
    if key.startswith("hydra") or key in GROUPS or override.is_delete() or override.package is not None:
        return
    if override.is_sweep_override():
        if not (override.is_choice_sweep() or override.is_range_sweep()):
            return  # an interval: its ends are checked against the setting when the space is built
        values = list(override.sweep_iterator())
    else:
        values = [override.value()]
    for value in values:
        problem = type_problem(key, value)
        if problem:
            shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
            raise ConfigError(key, f"{shown} is not accepted; accepted: {_accepted(problem)}")


def _accepted(problem: str) -> str:
    """OmegaConf's reason, in the words of our messages."""
    for omegaconf_type, words in (("Integer", "an integer"), ("Float", "a number"), ("Boolean", "true or false")):
        if f"converted to {omegaconf_type}" in problem:
            return words
    if "is not Optional" in problem or "cannot be assigned None" in problem:
        return "a value, not null"
    if "valid bool" in problem:
        return "true or false"
    return problem


def check_group(override, arg: str, dirs: list[Path]) -> None:
    group = override.key_or_group.lstrip("+~")
    if group not in GROUPS or override.is_delete():
        return
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


def check_argv(argv: list[str], default_conf: Path) -> None:
    """Every problem of the command line, in one ConfigError."""
    parser = OverridesParser.create()
    dirs = config_dirs(argv, default_conf)
    known = known_keys(dirs, _config_name(argv))
    sweeper_keys = _flat_keys(_yaml(default_conf / "hydra" / "sweeper" / "lr_sweeper.yaml")) - {"_target_"}
    p = Problems()
    for arg in override_args(argv):
        try:
            override = parser.parse_override(arg)
        except HydraException as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            p.errors.append(ConfigError("", f"cannot parse override {arg!r}: {first}"))
            continue
        before = len(p.errors)
        p.check(check_key, override, known, sweeper_keys)
        if len(p.errors) > before:
            continue  # an unknown key has no type or options to check
        if p.check(check_grammar, override, arg) is None and len(p.errors) > before:
            continue  # glob(), an unknown tag: nothing more to check in it
        p.check(check_type, override)
        p.check(check_group, override, arg, dirs)
    p.raise_any()


# flags that print (the config, help, completion) and run nothing
_WRITES_NOTHING = ("--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i", "--shell-completion", "-sc",
                   "--version")


def check_output_dir(argv: list[str]) -> None:
    """hydra.run.dir / hydra.sweep.dir as given on the command line, before Hydra writes into them:
    not a file, and a single run's not a finished run of another command."""
    from sweeper.run_dir import check_single_run_dir, not_a_directory

    if any(flag in argv for flag in _WRITES_NOTHING):
        return
    multirun = "-m" in argv or "--multirun" in argv
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    overrides = override_args(argv)
    parsed = OverridesParser.create().parse_overrides(overrides)  # already checked to parse
    where = next((str(o.value()) for o in parsed if o.key_or_group == key and o.value() is not None), None)
    if not where or "${" in where:
        return  # Hydra's default: a new directory each time
    if multirun:
        not_a_directory(Path(where), key)
    else:
        check_single_run_dir(Path(where), [o.input_line for o in parsed if not o.key_or_group.startswith("hydra.")])


def run_checked(app) -> None:
    """Runs a Hydra app after checking its command line, turning bad input into one line + exit 2:
    the checks above first, then anything Hydra or OmegaConf refuses while composing (a config
    file with a value of the wrong type, say). HYDRA_FULL_ERROR makes Hydra raise those to us
    instead of printing them over several lines."""
    import os
    import sys

    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from sweeper.core.errors import exit_bad_input
    from sweeper.core.layout import CONF_DIR
    from sweeper.hydra_mode import read_mode_from_flags

    try:
        check_argv(sys.argv[1:], CONF_DIR)
        check_output_dir(sys.argv[1:])
    except ConfigError as err:
        exit_bad_input(err)
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    read_mode_from_flags(sys.argv[1:])
    try:
        app()
    except (HydraException, OmegaConfBaseException) as err:
        exit_bad_input(ConfigError("", compose_problem(err)))


def compose_problem(err: BaseException) -> str:
    """`full_key: reason` from Hydra's and OmegaConf's messages (the cause holds the key)."""
    cause = err.__cause__ or err.__context__ or err
    key = getattr(cause, "full_key", None) or getattr(err, "full_key", None)
    lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()] or [type(cause).__name__]
    reason = next((line for line in lines if not line.startswith(("full_key:", "object_type=", "In '"))), lines[0])
    source = re.match(r"In '([^']+)'", str(err))
    where = f" (in config {source.group(1)!r})" if source else ""
    value = re.match(r"Value '(.*)' of type", reason)
    if key and value:
        return f"{key}: {value.group(1)!r}{where} is not accepted; accepted: {_accepted(reason)}"
    return f"{key}: {reason}{where}" if key else " ".join(lines)
