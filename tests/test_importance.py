"""What mattered (sweeper/importance.py) and the picture of the search (plots.draw_search). No torch."""
import json
import math
import random

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from conftest import run_cli
from sweeper.importance import MIN_TRIALS, importances, summary_lines

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"lr": FloatDistribution(1e-5, 1e-2, log=True), "lora.r": IntDistribution(8, 32, step=8),
         "scheduler": CategoricalDistribution(["cosine", "linear"])}


def add_trials(study, n, objective=lambda p: (math.log10(p["lr"]) + 3.5) ** 2, keys=tuple(SPACE)):
    rng = random.Random(0)
    for _ in range(n):
        params = {"lr": 10 ** rng.uniform(-5, -2), "lora.r": rng.choice([8, 16, 24, 32]),
                  "scheduler": rng.choice(["cosine", "linear"])}
        params = {k: params[k] for k in keys}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: SPACE[k] for k in keys},
                                                  value=objective(params)))


def test_a_loss_that_depends_on_lr_only_ranks_lr_first():
    study = optuna.create_study()
    add_trials(study, 30)
    ranked, how = importances(study)
    assert how == "PED-ANOVA" and set(ranked) == set(SPACE)
    assert next(iter(ranked)) == "lr" and ranked["lr"] > 0.5, ranked
    assert math.isclose(sum(ranked.values()), 1.0, rel_tol=1e-6)


def test_a_maximised_objective_ranks_the_key_it_depends_on():
    study = optuna.create_study(direction="maximize")
    add_trials(study, 30, objective=lambda p: p["lora.r"] / 32)
    ranked, _ = importances(study)
    assert next(iter(ranked)) == "lora.r", ranked


def test_too_few_trials_and_a_single_key_say_so_in_one_line():
    study = optuna.create_study()
    add_trials(study, MIN_TRIALS - 1)
    assert importances(study) == (None, f"importance: needs at least {MIN_TRIALS} complete trials; this study has "
                                        f"{MIN_TRIALS - 1}")
    single = optuna.create_study()
    add_trials(single, 10, keys=("lr",))
    assert importances(single) == (None, "importance: only lr was swept, so it is all that varied")


def test_summary_lines_read_the_sweeps_sqlite_study(tmp_path):
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'study.db'}")
    add_trials(study, 12)
    info = {"study": "s", "objective": "eval_loss", "direction": "minimize",
            "storage": "sqlite:////moved/away/study.db"}  # the sweep dir moved: study.db beside sweep.json
    lines = summary_lines(tmp_path, info)
    assert lines[0] == "## What mattered" and "PED-ANOVA over 12 complete trials" in lines[2]
    assert lines[4].startswith("- lr ")


@pytest.mark.parametrize("storage, says", [
    ("postgresql://me:***@db:5432/optuna", "holds a password"),
    (None, "no study file"),
])
def test_a_study_out_of_reach_is_one_line(tmp_path, storage, says):
    lines = summary_lines(tmp_path, {"study": "s", "storage": storage})
    assert len(lines) == 3 and says in lines[2]


@pytest.mark.slow
def test_a_real_sweep_draws_its_search_and_says_what_mattered(tmp_path):
    sweep = tmp_path / "search"
    fast = ["max_steps=4", "eval_interval=2", "save_interval=4", "data.max_eval_examples=8", "batch_size=4",
            "micro_batch_size=4"]
    proc = run_cli(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=search", "lr=1e-3,3e-2", "lora.r=4,8", *fast,
                    "hydra.sweeper.pruner=none"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    png = sweep / "search.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (sweep / "summary.md").read_text()
    assert "## What mattered" in md and "- lr " in md and "- lora.r " in md, md
    report = run_cli([str(sweep)], module="sweeper.report")
    assert report.returncode == 0 and "## What mattered" in report.stdout, report.stderr[-2000:]
    table_lines = [line for line in report.stdout.splitlines() if line.startswith("|")]
    assert table_lines and max(map(len, table_lines)) <= 100
    assert json.loads((sweep / "sweep.json").read_text())["study"] == "search"
