"""hydra.sweeper.budget: compute for the whole sweep; spent, it stops cleanly and resumes."""
import optuna
import pytest
from optuna.trial import TrialState

from conftest import FAST, one_line_exit_2, read_json, run_cli
from sweeper.compute_budget import parse_budget, plan_first_rung, planned_pruner, used
from sweeper.core.layout import SPENT
from sweeper.settings import SweepSettings


@pytest.mark.parametrize("text,kind,limit", [("2h", "seconds", 7200), ("90m", "seconds", 5400),
                                             ("3600s", "seconds", 3600), ("5000steps", "steps", 5000),
                                             ("1.5gpu_h", "gpu_seconds", 5400)])
def test_the_accepted_forms(text, kind, limit):
    budget = parse_budget(text)
    assert (budget.kind, budget.limit) == (kind, limit)


def test_a_trial_spends_its_wall_time_steps_and_gpu_time():
    assert used({"wall_seconds": 100.0, "steps": 40, "world_size": 4}) == {
        "seconds": 100.0, "steps": 40, "gpu_seconds": 400.0}
    assert used({}) == {"seconds": 0.0, "steps": 0, "gpu_seconds": 0.0}


@pytest.mark.parametrize("budget,n_trials,max_steps,eval_interval,first_rung", [
    ("1440steps", 36, 40, 10, None),      # 36 full trials fit: nothing to plan
    ("2h", 36, 40, 10, None),             # not a steps budget: its steps per second are not known yet
    ("10000steps", 100, 400, 25, 25),     # 100 x 100 x 1.75 = 17500 too much; 100 x 25 x 2.5 = 6250 fits
    ("20000steps", 100, 400, 25, 100),    # 17500 fits: the longest first rung that does
    ("500steps", 36, 40, 10, 10),         # nothing fits: the shortest rung, and the budget stops the sweep
    ("500steps", 36, -1, 10, None),       # max_steps -1 (epochs): the steps are not known before the data
    ("50steps", 20, 5, 10, None),         # no evaluation before the last step: nothing to prune on
])
def test_the_first_rung_is_the_longest_that_fits_the_steps_budget(budget, n_trials, max_steps, eval_interval,
                                                                    first_rung):
    assert plan_first_rung(parse_budget(budget), n_trials, max_steps, eval_interval) == first_rung


def test_the_plan_only_moves_the_first_rung_down_and_only_for_successive_halving():
    spec = SweepSettings(pruner="successive_halving", n_warmup_steps=200).pruner_spec()
    base = {"max_steps": 400, "eval_interval": 25}
    assert planned_pruner(spec, parse_budget("10000steps"), 100, base)["n_warmup_steps"] == 25
    assert planned_pruner(spec, parse_budget("20000steps"), 100, base)["n_warmup_steps"] == 100
    low = SweepSettings(pruner="successive_halving", n_warmup_steps=10).pruner_spec()
    assert planned_pruner(low, parse_budget("20000steps"), 100, base) == low  # 10 already screens more cheaply
    hyperband = SweepSettings(pruner="hyperband").pruner_spec()
    assert planned_pruner(hyperband, parse_budget("10000steps"), 100, base) == hyperband


@pytest.mark.slow
def test_a_successive_halving_sweep_plans_its_rungs_within_the_budget(tmp_path):
    # 4 trials x 6 steps = 24 > 14: the first rung moves from n_warmup_steps 10 (past max_steps: no pruning
    # at all) to eval_interval 3, so trials worse than the rung's best stop at step 3
    proc = run_cli(["-m", "lr=1e-4,3e-3,1e-5,1e-2", f"hydra.sweep.dir={tmp_path}",
                    "hydra.sweeper.pruner=successive_halving", "hydra.sweeper.budget=14steps", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_json(tmp_path / "sweep.json")["pruner"]["n_warmup_steps"] == 3
    assert "successive_halving's first rung at 3 steps (planned within the budget)" in proc.stdout
    steps = [read_json(d / "result.json")["steps"] for d in sorted((tmp_path / "trials").iterdir())]
    assert 3 in steps and 6 in steps, steps  # pruned at the planned rung, and one ran to the end


@pytest.mark.parametrize("bad", ["2", "two hours", "0steps", "5gpus"])
def test_a_malformed_budget_is_one_line(tmp_path, bad):
    proc = run_cli(["-m", "lr=1e-3,2e-3", f"hydra.sweep.dir={tmp_path}", f"hydra.sweeper.budget={bad}"], timeout=120)
    line = one_line_exit_2(proc)
    assert line.startswith("error: hydra.sweeper.budget") and "5000steps" in line and "2h" in line
    assert not (tmp_path / "study.db").exists()


@pytest.mark.slow
def test_a_steps_budget_stops_the_sweep_and_a_larger_one_continues(tmp_path):
    # 6 steps a trial: 0 -> 6 -> 12 (< 13: a third starts) -> 18, spent; the grid has 6 points
    args = ["-m", "lr=1e-3,2e-3,3e-3,4e-3,5e-3,6e-3", f"hydra.sweep.dir={tmp_path}", "hydra.sweeper.pruner=none",
            *FAST]
    proc = run_cli(args + ["hydra.sweeper.budget=13steps"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "budget spent: 18 of 13 steps (hydra.sweeper.budget=13steps)" in proc.stdout
    assert "| budget 12 of 13 steps" in proc.stdout  # the progress line
    info = read_json(tmp_path / "sweep.json")
    study = optuna.load_study(study_name=info["study"], storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 3
    storage = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    assert storage.get_study_system_attrs(storage.get_study_id_from_name(info["study"]))[SPENT]["steps"] == 18
    assert (tmp_path / "summary.md").read_text().count("| complete") == 3  # the results are written

    proc = run_cli(args + ["hydra.sweeper.budget=25steps"])  # the same command, a larger budget: resumes
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "budget spent: 30 of 25 steps" in proc.stdout
    study = optuna.load_study(study_name=info["study"], storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 1  # the grid's last point, for a larger budget
