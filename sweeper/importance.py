"""What mattered: hyperparameter importance over the sweep's own study, by Optuna's evaluator.

    lines = summary_lines(sweep_dir, info)   # markdown for summary.md and the report

    study = optuna.create_study()            # or any study, e.g. optuna.load_study(...)
    ranked, note = importances(study)        # ({"lr": 0.93, "lora.r": 0.05, ...}, "") best first

PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator) scores how differently each key's
values are spread in the best trials than in all complete trials; it is fast and needs no
scikit-learn. On a small study the "best trials" are the top 2/n (at least 10%, at most half),
so they are never a single trial. If PED-ANOVA fails, fANOVA is tried (it needs scikit-learn).
Too few complete trials, a single swept key, a storage behind a password (sweep.json keeps it
redacted) or a study that cannot be opened: one line saying so, never an error.
"""
from __future__ import annotations

import json

import warnings
from pathlib import Path

import optuna
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState

from sweeper.redact import redact

MIN_TRIALS = 4  # complete trials before importance says anything


def open_study(sweep_dir: str | Path, info: dict) -> tuple[optuna.Study | None, str]:
    """The sweep's study (storage URL from sweep.json, else the sqlite file in the sweep dir)."""
    sweep_dir = Path(sweep_dir)
    url = str(info.get("storage") or f"sqlite:///{(sweep_dir / 'study.db').resolve()}")
    if "***" in url:
        return None, ("importance: skipped, the study's storage URL holds a password that sweep.json "
                      "does not keep (optuna.importance on the study gives it)")
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():  # the sweep directory moved: its study.db came with it
            path = sweep_dir / "study.db"
            if not path.is_file():
                return None, f"importance: skipped, no study file ({path})"
            url = f"sqlite:///{path.resolve()}"
    from sweeper.study import make_storage  # no heartbeat: a reader only
    try:
        storage = make_storage(url)
        return optuna.load_study(study_name=str(info.get("study") or sweep_dir.name), storage=storage), ""
    except Exception as err:
        return None, f"importance: skipped, cannot open the study: {redact(' '.join(str(err).split())[:200])}"


def importances(study: optuna.Study, maximize: bool | None = None) -> tuple[dict[str, float] | None, str]:
    """Importance of each swept key for the (first) objective, best first; or None and why not."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    keys = sorted({k for t in complete for k in t.params})
    if maximize is None:
        maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    if len(keys) == 1:
        return None, f"importance: only {keys[0]} was swept, so it is all that varied"
    if len(complete) < MIN_TRIALS:
        return None, (f"importance: needs at least {MIN_TRIALS} complete trials; this study has "
                      f"{len(complete)}")
    sign = -1.0 if maximize else 1.0
    target = lambda t: sign * t.values[0]  # noqa: E731 (PED-ANOVA ranks low targets best)
    quantile = min(0.5, max(0.1, 2 / len(complete)))
    errors = []
    for name, make in (("PED-ANOVA", lambda: PedAnovaImportanceEvaluator(target_quantile=quantile)),
                       ("fANOVA", lambda: FanovaImportanceEvaluator(seed=0))):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ranked = get_param_importances(study, evaluator=make(), target=target)
            if ranked:
                return {k: float(v) for k, v in ranked.items()}, name
            errors.append(f"{name}: no parameter shared by every complete trial")
        except Exception as err:  # e.g. fANOVA without scikit-learn
            errors.append(f"{name}: {' '.join(str(err).split())[:120]}")
    return None, "importance: not computed (" + "; ".join(errors) + ")"


_computed: dict[tuple, list[str]] = {}


def summary_lines(sweep_dir: str | Path, info: dict) -> list[str]:
    """A "What mattered" section: each key's importance with a bar, or one line saying why not.
    The end of a sweep asks twice (summary.md, then the printed table): a study file that has
    not changed since is not read again."""
    db, wal = Path(sweep_dir) / "study.db", Path(sweep_dir) / "study.db-wal"  # commits land in the log first
    key = (str(Path(sweep_dir).resolve()), json.dumps(info, sort_keys=True, default=str),
           db.stat().st_mtime_ns if db.exists() else None, wal.stat().st_mtime_ns if wal.exists() else None)
    if key[2] is None or key not in _computed:
        _computed[key] = _summary_lines(sweep_dir, info)
    return _computed[key]


def _summary_lines(sweep_dir: str | Path, info: dict) -> list[str]:
    study, note = open_study(sweep_dir, info)
    if study is None:
        return ["## What mattered", "", note]
    if not study.get_trials(deepcopy=False):
        return []
    ranked, how = importances(study, maximize={"maximize": True, "minimize": False}.get(info.get("direction")))
    if ranked is None:
        return ["## What mattered", "", how]
    n = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    width = max(map(len, ranked))
    lines = [f"- {k:<{width}}  {v:5.2f}  {'#' * round(v * 40)}" for k, v in ranked.items()]
    return ["## What mattered", "",
            f"Importance for {info.get('objective', 'the objective')} ({how} over {n} complete trials, "
            "Optuna's optuna.importance; the shares add up to 1):", "", *lines]
