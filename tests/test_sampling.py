"""Samplers seeded per trial: workers on one study draw different configs, one process is reproducible."""
import optuna
import pytest
from optuna.distributions import FloatDistribution

from sweeper.sampling import finished_twin, make_sampler

SPACE = {"lr": FloatDistribution(1e-4, 1e-2, log=True)}


def _study(storage, seed=0, name="s", sampler="tpe"):
    return optuna.create_study(study_name=name, storage=storage, sampler=make_sampler(sampler, seed),
                               load_if_exists=True)


def _draw(study, n):
    out = []
    for _ in range(n):
        trial = study.ask(fixed_distributions=SPACE)
        out.append(trial.params["lr"])
        study.tell(trial, trial.params["lr"])  # any value: the sampler must still spread out
    return out


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes"])
def test_two_workers_on_one_study_draw_different_values(tmp_path, sampler):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first, second = _study(storage, sampler=sampler), _study(storage, sampler=sampler)  # same seed, as two processes
    drawn = []
    for _ in range(4):  # interleaved, as two workers popping the same budget
        drawn += _draw(first, 1) + _draw(second, 1)
    assert len(set(drawn)) == len(drawn), drawn


def test_one_process_is_reproducible_and_seed_matters():
    a = _draw(_study(optuna.storages.InMemoryStorage()), 8)
    b = _draw(_study(optuna.storages.InMemoryStorage()), 8)
    c = _draw(_study(optuna.storages.InMemoryStorage(), seed=1), 8)
    assert a == b
    assert a != c


def test_a_resumed_process_does_not_redraw_the_first_values(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    before = _draw(_study(storage), 2)
    after = _draw(_study(storage), 2)  # a new process after kill -9, same command and seed
    assert not set(before) & set(after)


def test_finished_twin_finds_only_finished_equal_configs():
    study = optuna.create_study()
    done = study.ask({"lr": optuna.distributions.CategoricalDistribution([0.1, 0.2])})
    study.tell(done, 1.0)
    failed = study.ask({"lr": optuna.distributions.CategoricalDistribution([0.1, 0.2])})
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"lr": done.params["lr"]})
    new = study.ask({"lr": optuna.distributions.CategoricalDistribution([0.1, 0.2])})
    trials = study.get_trials(deepcopy=False)
    assert finished_twin(trials, new, skip=lambda t: False).number == done.number
    assert finished_twin(trials, new, skip=lambda t: t.number == done.number) is None
