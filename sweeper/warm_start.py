"""hydra.sweeper.warm_start: the best configs of an earlier study run first in a new sweep.

    hydra.sweeper.warm_start=results/sweep-a    a sweep dir (its sweep.json names the study and its storage)
    hydra.sweeper.warm_start=sweep-a            a study in this sweep's hydra.sweeper.storage (postgresql://...)
    "hydra.sweeper.warm_start='postgresql://u:pw@host/db#sweep-a'"   <storage URL>#<study name>, quoted
                                                (Hydra's grammar takes '#' only inside quotes)

The configs take the new study's first budget slots (budget.fill_budget enqueues them
before the empty ones), so they are ordinary trials of it: counted in n_trials, told like
any other, and TPE learns from them. A config already in the new study (a re-run of the
same command) is not enqueued again. Only params swept here, inside this sweep's
distributions, are carried; an earlier study on another model or data is refused.
"""
from __future__ import annotations

import logging
from pathlib import Path

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from sweeper.core.errors import ConfigError
from sweeper.core.layout import REPEAT_OF, TRAINED_ON, read_sweep_info
from sweeper.redact import redact
from sweeper.study import make_storage, storage_file, study_marks

log = logging.getLogger("sweeper")
KEY = "hydra.sweeper.warm_start"
ACCEPTED = ("accepted: a sweep directory holding sweep.json (results/<sweep>), a study name in "
            "hydra.sweeper.storage, or '<storage URL>#<study name>' (quoted)")


def trained_on(base: dict) -> dict:
    """What makes two studies comparable: the model and the data (its file, or its hub name)."""
    data = base.get("data") or {}
    return {"model": str((base.get("model") or {}).get("name_or_path")),
            "data": str(data.get("path") or data.get("hub_name"))}


def locate(source: str, own_storage: str) -> tuple[str, str, dict]:
    """(storage URL, study name, the earlier sweep.json or {}) for a sweep dir, a study name in
    this sweep's storage (hydra.sweeper.storage), or '<storage URL>#<study name>'."""
    if "#" in source:
        url, name = source.rsplit("#", 1)
        if url and name:
            return url, name, {}
        raise ConfigError(KEY, f"{redact(source)!r} is not accepted; {ACCEPTED}")
    info = read_sweep_info(source)
    if not (info.get("study") and info.get("storage")):
        if "/" not in source and not Path(source).exists():  # a bare name: a study in this sweep's storage
            return own_storage, source, {}
        raise ConfigError(KEY, f"{source!r}: no sweep.json naming a study there; {ACCEPTED}")
    if "***" in info["storage"]:  # sweep.json never holds a password (redact.py): this sweep's storage may
        if redact(own_storage) == info["storage"]:
            return own_storage, info["study"], info
        raise ConfigError(KEY, f"{source}: its storage {info['storage']} needs the password; accepted: that "
                          f"storage as hydra.sweeper.storage, or '{info['storage'].replace('***', 'PASSWORD')}"
                          f"#{info['study']}'")
    return info["storage"], info["study"], info


def load(url: str, name: str) -> tuple[optuna.Study, object]:
    """The earlier study, read only: a storage that is not there is an error, never created."""
    local = storage_file(url)
    if local is not None and not Path(local).is_file():
        raise ConfigError(KEY, f"{redact(url)}: no study storage there; {ACCEPTED}")
    try:
        storage = make_storage(url)
        return optuna.load_study(study_name=name, storage=storage), storage
    except ConfigError as err:
        raise ConfigError(KEY, err.message) from None
    except KeyError:
        raise ConfigError(KEY, f"no study {name!r} in {redact(url)}; {ACCEPTED}") from None


def check_comparable(source: str, theirs: dict | None, ours: dict) -> None:
    if theirs is None:
        log.warning("warm start: %s does not record its model and data; its configs are taken as they are",
                    redact(source))
        return
    differs = [f"{k} {theirs.get(k)} (here {v})" for k, v in ours.items() if theirs.get(k) != v]
    if differs:
        raise ConfigError(KEY, f"{redact(source)} fine-tuned another {'; '.join(differs)}; accepted: an earlier "
                          "sweep on the same model and data")


def inside(dist: BaseDistribution, value) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return any(type(c) is type(value) and c == value for c in dist.choices)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(dist, IntDistribution) and (value != int(value) or (int(value) - dist.low) % dist.step):
        return False
    return dist.low <= value <= dist.high


def best_configs(study: optuna.Study, top_k: int) -> list[tuple[int, dict]]:
    """(trial number, params) of the top_k complete trials, best first; seed repeats left out."""
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1
    done = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                   if t.system_attrs.get(REPEAT_OF) is None), key=lambda t: sign * t.values[0])
    out, seen = [], []
    for t in done:
        if t.params not in seen:
            seen.append(t.params)
            out.append((t.number, dict(t.params)))
    return out[:top_k]


def warm_configs(source: str, own_storage: str, top_k: int, space: dict[str, BaseDistribution],
                 ours: dict) -> list[tuple[str, dict]]:
    """(WARM_FROM mark, params) of the earlier study's best configs, as this search space takes them."""
    url, name, info = locate(source, own_storage)
    earlier, storage = load(url, name)
    check_comparable(source, study_marks(storage, name).get(TRAINED_ON) or info.get("trained_on"), ours)
    out, dropped = [], set()
    for number, params in best_configs(earlier, top_k):
        kept = {k: v for k, v in params.items() if k in space and inside(space[k], v)}
        dropped |= {f"{k}={v!r}" if k in space else k for k, v in params.items() if k not in kept}
        if kept:
            out.append((f"{name}#{number}", kept))
    if dropped:
        log.info("warm start: dropped %s (not swept here, or outside this sweep's range)", ", ".join(sorted(dropped)))
    if not out:
        log.info("warm start: study %r has no complete config this sweep can take", name)
    return out
