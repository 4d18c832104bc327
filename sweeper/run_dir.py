"""What a single run's directory (hydra.run.dir=DIR) may hold: never a sweep's trial, and never a
finished run of another command, so nothing finished is written over. Checked before Hydra writes
DIR/.hydra/, from the command each result records (result.json "command", written by the trial
itself: Hydra rewrites .hydra/overrides.yaml for every command that reaches it, refused or not).
"""
from __future__ import annotations

import json
from pathlib import Path

from sweeper.core.errors import ConfigError
from sweeper.core.record import RESULT_FILE, read_result, write_result

FINISHED = ("complete", "pruned", "diverged")  # a failed run may be run again with a fix
# a checkpoint that records its config (trainers/checkpoints.py FINGERPRINT): it resumes only under that
# config, and refuses any other as the trial starts; LitGPT's and a command's own checkpoints do not
OWN_CHECKPOINTS = "checkpoint-*/lr_sweeper_config.json"


def check_single_run_dir(run_dir: Path, overrides: list[str]) -> None:
    not_a_directory(run_dir, "hydra.run.dir")
    result = read_result(run_dir)
    if result is None:
        return  # nothing finished here (a killed run's own checkpoint resumes, or is refused, as it starts)
    theirs = result.get("command")
    theirs = theirs if isinstance(theirs, list) else _hydra_overrides(run_dir)
    if any(str(o).lstrip("+").startswith("trial.number=") for o in theirs or []):
        raise ConfigError("hydra.run.dir", f"{run_dir} is a trial of a sweep (its result.json says so); a single "
                          "run there would overwrite it; accepted: an empty directory (another hydra.run.dir)")
    same_command = theirs is not None and sorted(map(str, theirs)) == sorted(overrides)
    if result["state"] not in FINISHED or same_command or any(run_dir.glob(OWN_CHECKPOINTS)):
        return  # a failure to redo, the same command, or a checkpoint that resumes only under its own config
    what = f"`{' '.join(theirs) or '(no overrides)'}`" if theirs is not None else "a command it kept no record of"
    raise ConfigError("hydra.run.dir", f"{run_dir} holds a {result['state']} run of {what}; this command would "
                      f"overwrite it; accepted: an empty directory (another hydra.run.dir), {run_dir} moved aside, "
                      "or the command that made it (which runs it again)")


def not_a_directory(path: Path, field: str) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(field, f"{path} is a file, not a directory; accepted: a directory (new or existing)")


def record_command(run_dir: str | Path, overrides: list[str]) -> None:
    """The command into the trial's result.json, beside what the backend wrote there."""
    try:
        result = json.loads((Path(run_dir) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return
    if isinstance(result, dict):
        write_result(run_dir, {**result, "command": list(overrides)})


def _hydra_overrides(run_dir: Path) -> list[str] | None:
    """An older run's command, as Hydra saved it (for results written before they recorded it)."""
    import yaml

    try:
        saved = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return [str(o) for o in saved] if isinstance(saved, list) else None
