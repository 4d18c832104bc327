"""Beyond the anchors: LR range test, lr=auto, seed repeats, multi-objective, lr scaling in a sweep."""
import json

import optuna
import pytest

from conftest import FAST, read_json, run_cli
from trainers.lr_finder import suggest

pytestmark = pytest.mark.slow


def test_suggestion_is_the_steepest_descent_before_the_minimum():
    lrs = [10 ** (-6 + 6 * i / 59) for i in range(60)]
    # flat, then a steep fall around 1e-3, a minimum near 1e-2, then a blow-up
    loss = [5.0 if lr < 1e-4 else 5.0 - 2.0 * min(1.0, (lr / 1e-4) ** 0.5 / 10) if lr < 1e-2 else 3.0 + 50 * (lr - 1e-2)
            for lr in lrs]
    found = suggest(lrs, loss)
    assert 1e-4 <= found["suggested_lr"] < 1e-2
    low, high = found["interval"]
    assert low < found["suggested_lr"] < high and "steepest" in found["rule"]


def test_lr_find_cli_writes_plot_and_suggestion(tmp_path):
    proc = run_cli(["hydra.run.dir=" + str(tmp_path), "lr_find.steps=50"], module="sweeper.lr_find")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "suggested lr:" in proc.stdout and "interval" in proc.stdout
    found = json.loads((tmp_path / "lr_find.json").read_text())
    assert found["min_lr"] < found["interval"][0] < found["suggested_lr"] < found["interval"][1] <= found["max_lr"]
    assert (tmp_path / "lr_find.png").stat().st_size > 10_000
    assert not list(tmp_path.rglob("checkpoint-*"))  # a throwaway copy: nothing saved


def test_lr_auto_searches_the_suggested_interval(tmp_path):
    sweep = tmp_path / "auto"
    proc = run_cli(["-m", "lr=auto", f"hydra.sweep.dir={sweep}", "sweep.name=auto", "hydra.sweeper.n_trials=2",
                    "lr_find.steps=40", *FAST])
    assert proc.returncode == 0, proc.stderr[-2000:]
    low, high = json.loads((sweep / "lr_find" / "lr_find.json").read_text())["interval"]
    lrs = [read_json(p / "result.json")["params"]["lr"] for p in (sweep / "trials").iterdir()]
    assert len(lrs) == 2 and all(low <= lr <= high for lr in lrs)
    assert "suggested lr:" in proc.stdout


def test_seed_repeats_choose_the_winner_on_the_mean(tmp_path):
    sweep = tmp_path / "rep"
    proc = run_cli(["-m", "lr=1e-2,1e-5", f"hydra.sweep.dir={sweep}", "sweep.name=rep",
                    "hydra.sweeper.repeat.top_k=1", "hydra.sweeper.repeat.seeds=3", "hydra.sweeper.pruner=none",
                    *FAST])
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = optuna.load_study(study_name="rep", storage=f"sqlite:///{sweep / 'study.db'}")
    repeats = [t for t in study.trials if t.system_attrs.get("lr_sweeper:repeat_of") is not None]
    assert len(repeats) == 2 and {t.system_attrs["lr_sweeper:repeat_seed"] for t in repeats} == {43, 44}
    best_original = min((t for t in study.trials if t not in repeats), key=lambda t: t.value)
    assert all(t.params == best_original.params for t in repeats)
    best = read_json(sweep / "best.json")
    values = [best_original.value] + [t.value for t in repeats]
    assert best["seeds"] == 3 and best["trial"] == best_original.number
    assert best["mean"] == pytest.approx(sum(values) / 3)
    assert "Backed by 3 seeds" in (sweep / "best.yaml").read_text()
    header = (sweep / "summary.md").read_text()
    assert "eval_loss_mean" in header and "eval_loss_std" in header
    # the same command again adds nothing: the study is complete, repeats included
    again = run_cli(["-m", "lr=1e-2,1e-5", f"hydra.sweep.dir={sweep}", "sweep.name=rep",
                     "hydra.sweeper.repeat.top_k=1", "hydra.sweeper.repeat.seeds=3", "hydra.sweeper.pruner=none",
                     *FAST])
    assert again.returncode == 0 and len(optuna.load_study(study_name="rep", storage=f"sqlite:///{sweep / 'study.db'}").trials) == 4


def test_multi_objective_marks_the_pareto_front(tmp_path):
    sweep = tmp_path / "mo"
    proc = run_cli(["-m", "lr=3e-3,1e-2", "micro_batch_size=2,8", f"hydra.sweep.dir={sweep}", "sweep.name=mo",
                    "hydra.sweeper.second_objective=tokens_per_second", *FAST])
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = optuna.load_study(study_name="mo", storage=f"sqlite:///{sweep / 'study.db'}")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    front = {t.number for t in study.best_trials}
    import pandas as pd
    table = pd.read_csv(sweep / "summary.csv")
    marked = set(table.loc[table["pareto"] == "yes", "trial"])
    assert marked == front and marked


def test_lr_scaling_moves_the_lr_with_the_batch(tmp_path):
    sweep = tmp_path / "scale"
    proc = run_cli(["-m", "batch_size=8,32", "lr=1e-3", "lr_scaling=sqrt", "lr_reference_batch=8",
                    f"hydra.sweep.dir={sweep}", "sweep.name=scale", "max_steps=4", "eval_interval=2",
                    "save_interval=4", "data.max_eval_examples=16", "micro_batch_size=4"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    import pandas as pd
    table = pd.read_csv(sweep / "summary.csv").set_index("batch_size")
    assert table.loc[8, "effective_lr"] == pytest.approx(1e-3)
    assert table.loc[32, "effective_lr"] == pytest.approx(2e-3)
    assert (table["lr"] == 1e-3).all()
