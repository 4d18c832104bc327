"""What a sweep directory may hold: one study, with one search space, on a disk with room.

Trial directories are numbered by the study (`trials/<n>/`), so a second study
in the same directory would write its trials over the first one's: refused
here, before anything is written. So is a search space that changed under an
existing study name, a study.db that is empty, and a disk with no room left.
"""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

from optuna.distributions import BaseDistribution, distribution_to_json

from sweeper.core.errors import ConfigError
from sweeper.core.layout import read_sweep_info
from sweeper.redact import redact
from sweeper.run_dir import not_a_directory
from sweeper.sqlite_file import holds_study
from sweeper.study import storage_file

MIN_FREE_MB = 50  # a study.db, a few checkpoints and the table; a real model needs far more


def _start_anew(sweep_dir: Path) -> str:
    return (f"accepted: the same command to continue it, or another sweep.name / hydra.sweep.dir to start "
            f"anew (or move {sweep_dir} aside)")


def claim(sweep_dir: Path, study_name: str, storage_url: str) -> None:
    """A sweep directory belongs to the study that first wrote its sweep.json, in the storage
    recorded there: the same name in another storage would be a new, empty study numbering its
    trials from 0 again, over the old trials/."""
    not_a_directory(sweep_dir, "hydra.sweep.dir")
    info = read_sweep_info(sweep_dir)
    owner, theirs = info.get("study"), info.get("storage")
    if owner and owner != study_name:
        raise ConfigError("sweep.name", f"{sweep_dir} already holds study {owner!r}, and this command's "
                          f"search space makes study {study_name!r}; its trials/ would be overwritten; "
                          + _start_anew(sweep_dir))
    ours = redact(storage_url)
    if owner and theirs and not _same_storage(theirs, ours, sweep_dir, owner):
        raise ConfigError("hydra.sweeper.storage", f"{sweep_dir} holds study {owner!r} in {theirs}, not in {ours}: "
                          "a study started there would write its trials over this sweep's; accepted: "
                          f"hydra.sweeper.storage={theirs} (or leave it out if that is the default) to continue "
                          "it, or another sweep.name / hydra.sweep.dir to start anew")


def _same_storage(theirs: str, ours: str, sweep_dir: Path, study: str) -> bool:
    """The same URL, the same file spelled another way, or the sweep's own study.db holding the study
    after the sweep directory was moved or copied (its recorded path is the old one)."""
    if theirs == ours:
        return True
    a, b = storage_file(theirs), storage_file(ours)
    if a is None or b is None:
        return False
    own = (sweep_dir / "study.db").resolve()
    return Path(a).resolve() == Path(b).resolve() or (Path(b).resolve() == own and holds_study(own, study))


def space_signature(distributions: dict[str, BaseDistribution], fixed: list[str]) -> str:
    return json.dumps({"swept": {k: json.loads(distribution_to_json(v)) for k, v in sorted(distributions.items())},
                       "fixed": sorted(fixed)}, sort_keys=True)


def check_same_space(study_name: str, sweep_dir: Path, theirs: str | None, ours: str) -> None:
    """An existing study continues only under the search space it was made with."""
    if theirs is None or theirs == ours:
        return  # None: made before the signature was recorded
    old, new = json.loads(theirs), json.loads(ours)
    changed = sorted({k for k in set(old["swept"]) | set(new["swept"]) if old["swept"].get(k) != new["swept"].get(k)})
    fixed = sorted(set(old["fixed"]) ^ set(new["fixed"]))
    what = ", ".join([f"swept {k}" for k in changed] + [f"fixed {o}" for o in fixed])
    raise ConfigError("sweep.name", f"study {study_name!r} was made with another search space ({what}); "
                      + _start_anew(sweep_dir))


def check_study_file(url: str) -> None:
    """A default sqlite study file that exists must be a database: an empty file would be
    silently made into a new, empty study."""
    if not url.startswith("sqlite:///") or storage_file(url) == ":memory:":
        return
    path = Path(storage_file(url))
    if path.exists() and path.stat().st_size == 0:
        raise ConfigError("hydra.sweeper.storage", f"{path} is empty (0 bytes), not a study: restore it, or move "
                          f"it aside (mv {path} {path}.bak) and run the same command to start the study anew")


def free_mb(path: Path) -> float:
    probe = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    return shutil.disk_usage(probe).free / 2**20


def check_free_space(sweep_dir: Path, min_free_mb: float = MIN_FREE_MB) -> None:
    free = free_mb(sweep_dir)
    if free < min_free_mb:
        raise DiskFull(sweep_dir, f"only {free:.1f} MB free, {min_free_mb} MB needed")


class DiskFull(Exception):
    def __init__(self, path: Path, detail: str = "no space left on device"):
        self.path = path
        super().__init__(f"the disk of {path} is full ({detail}): free some space, then run the same "
                         "command to resume")


def is_disk_full(err: BaseException | None) -> bool:
    """Walks an exception's causes: a full disk surfaces as OSError(ENOSPC) from a file write,
    or as sqlite's 'database or disk is full' wrapped in sqlalchemy and Optuna errors."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFull) or (isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)):
            return True
        if "database or disk is full" in str(err) or "No space left on device" in str(err):
            return True
        err = err.__cause__ or err.__context__
    return False
