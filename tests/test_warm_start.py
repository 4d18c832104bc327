"""hydra.sweeper.warm_start: an earlier sweep's best configs take the new study's first slots."""
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from conftest import FAST, ROOT, one_line_exit_2, read_json, run_cli
from sweeper.core.errors import ConfigError
from sweeper.core.layout import WARM_FROM
from sweeper.warm_start import inside, locate

LR = "lr=tag(log,interval(1e-4,1e-1))"


def test_inside_the_new_space():
    assert inside(FloatDistribution(1e-4, 1e-1, log=True), 3e-3)
    assert not inside(FloatDistribution(1e-4, 1e-2, log=True), 3e-2)
    assert inside(CategoricalDistribution(["cosine", "linear"]), "cosine")
    assert not inside(CategoricalDistribution([8, 16]), 16.0)
    assert inside(IntDistribution(8, 32, step=8), 16) and not inside(IntDistribution(8, 32, step=8), 12)


def test_locate_reads_a_sweep_dir_or_url_and_study(tmp_path):
    own = "postgresql://u:secret@h/db"
    assert locate("sqlite:////x/study.db#a", own) == ("sqlite:////x/study.db", "a", {})
    assert locate("a", own) == (own, "a", {})  # a study name in this sweep's storage
    (tmp_path / "sweep.json").write_text('{"study": "a", "storage": "postgresql://u:***@h/db"}')
    assert locate(str(tmp_path), own)[:2] == (own, "a")  # the password comes from hydra.sweeper.storage
    with pytest.raises(ConfigError, match="hydra.sweeper.warm_start.*'postgresql://u:PASSWORD@h/db#a'"):
        locate(str(tmp_path), "sqlite:////x/study.db")


@pytest.mark.parametrize("source", ["/nonexistent/sweep", "'sqlite:////nonexistent/study.db#a'", "nosuchstudy"])
def test_a_warm_start_naming_nothing_readable_is_one_line(tmp_path, source):
    proc = run_cli(["-m", LR, f"hydra.sweep.dir={tmp_path / 'b'}", f"hydra.sweeper.warm_start={source}", *FAST],
                   timeout=120)
    assert one_line_exit_2(proc).startswith("error: hydra.sweeper.warm_start")
    assert not (tmp_path / "b" / "study.db").exists()


@pytest.mark.slow
def test_b_starts_with_a_best_configs_and_tpe_learns_from_them(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    proc = run_cli(["-m", LR, f"hydra.sweep.dir={a}", "sweep.name=a", "hydra.sweeper.n_trials=3",
                    "hydra.sweeper.pruner=none", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    study_a = optuna.load_study(study_name="a", storage=f"sqlite:///{a / 'study.db'}")
    best_a = [t.params["lr"] for t in sorted(study_a.get_trials(states=(TrialState.COMPLETE,)),
                                             key=lambda t: t.value)][:2]

    # B sweeps lr and scheduler: A's scheduler was fixed, so only lr is carried
    args = ["-m", LR, "scheduler=cosine,linear", f"hydra.sweep.dir={b}", "sweep.name=b", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.sampler=tpe", "hydra.sweeper.pruner=none", f"hydra.sweeper.warm_start={a}",
            "hydra.sweeper.warm_start_top_k=2", *FAST]
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "warm start: 2 config(s) of study 'a' run first" in proc.stdout + proc.stderr
    study_b = optuna.load_study(study_name="b", storage=f"sqlite:///{b / 'study.db'}")
    trials = sorted(study_b.trials, key=lambda t: t.number)
    assert [t.params["lr"] for t in trials[:2]] == best_a  # the first ones, best first
    assert [t.system_attrs.get(WARM_FROM, "")[:2] for t in trials] == ["a#", "a#", ""]
    started = [line.split()[1] for line in proc.stdout.splitlines() if line.strip().startswith("trial ")
               and " started" in line]
    assert started[:2] == ["0", "1"]  # run first
    assert read_json(b / "trials" / "0" / "result.json")["params"]["lr"] == best_a[0]
    # ordinary complete trials of B, with B's distributions: TPE's history includes them
    assert all(t.state == TrialState.COMPLETE and t.distributions["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
               for t in trials)
    assert len(trials) == 3  # the budget's slots, not extra trials

    # the same command again: nothing enqueued twice, nothing run
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(optuna.load_study(study_name="b", storage=f"sqlite:///{b / 'study.db'}").trials) == 3

    # another data file (the same rows, elsewhere): refused in one line, before anything is written
    other = tmp_path / "train.jsonl"
    other.write_text((ROOT / "trainers" / "embedded" / "tasks" / "train.jsonl").read_text())
    proc = run_cli(["-m", LR, f"hydra.sweep.dir={tmp_path / 'c'}", f"hydra.sweeper.warm_start={a}",
                    f"data.path={other}", *FAST], timeout=120)
    line = one_line_exit_2(proc)
    assert line.startswith("error: hydra.sweeper.warm_start") and "data" in line
    assert not (tmp_path / "c" / "study.db").exists()


def _spec(study, grid=None, warm=()):
    from sweeper.budget import StudySpec
    return StudySpec(study.study_name, None, None, None, ["minimize"], ["eval_loss"], "", {}, 3, grid, list(warm))


def test_warm_configs_take_the_first_slots_once():
    from sweeper.budget import fill_budget

    study = optuna.create_study()
    warm = [("a#2", {"lr": 3e-3}), ("a#0", {"lr": 1e-2})]
    fill_budget(study, _spec(study, warm=warm))
    fill_budget(study, _spec(study, warm=warm))  # a re-run: nothing added, nothing twice
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [{"lr": 3e-3}, {"lr": 1e-2}, {}]
    assert [t.system_attrs.get(WARM_FROM) for t in waiting] == ["a#2", "a#0", None]


def test_on_a_grid_warm_points_run_first_and_the_grid_is_not_grown():
    from sweeper.budget import fill_budget

    study = optuna.create_study()
    grid = [{"lr": v} for v in (1e-3, 3e-3, 1e-2)]
    fill_budget(study, _spec(study, grid=grid, warm=[("a#1", {"lr": 1e-2})]))
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"]["lr"] for t in waiting] == [1e-2, 1e-3, 3e-3]
