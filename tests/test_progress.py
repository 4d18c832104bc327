"""The progress line (sweeper/progress.py): counts and best come from the study; trials that one
poll returned together each get the line of the study as it stood at their own tell. No torch."""
import io

import optuna

from sweeper.core.layout import REPEAT_OF, REPEAT_SEED
from sweeper.progress import Progress
from sweeper.study import enqueue_slot, tell_outcome


def test_trials_finished_in_one_poll_each_count_the_study_at_their_own_tell():
    study = optuna.create_study()
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}
    told = []
    for number, value in enumerate([2.0, 1.5, 1.8]):  # three trials of one poll, told in turn
        trial = study.ask(space)
        tell_outcome(trial, "complete", "")
        study.tell(trial, value)
        told.append((number, {"state": "complete"}))
    out = io.StringIO()
    Progress(4, "eval_loss", stream=out).finished_all(told, study.get_trials(deepcopy=False))  # one read after
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in lines] == ["[1/4]", "[2/4]", "[3/4]"]
    bests = [line for line in out.getvalue().splitlines() if "best eval_loss" in line]
    assert ["(trial 0)" in bests[0], "(trial 1)" in bests[1], "(trial 1)" in bests[2]] == [True] * 3


def test_a_seed_repeat_told_in_the_same_poll_is_already_in_the_earlier_lines_planned_total():
    study = optuna.create_study()
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}
    first = study.ask(space)
    enqueue_slot(study, {"lr": 1e-3}, {REPEAT_OF: 0, REPEAT_SEED: 7})  # planned while trial 0 ran
    repeat = study.ask(space)
    for trial, value in ((first, 2.0), (repeat, 2.1)):  # both come back in one poll
        tell_outcome(trial, "complete", "")
        study.tell(trial, value)
    out = io.StringIO()
    Progress(1, "eval_loss", stream=out).finished_all([(0, {"state": "complete"}), (1, {"state": "complete"})],
                                                      study.get_trials(deepcopy=False))
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[")]
    assert [line.split()[0] for line in lines] == ["[1/2]", "[2/2]"]
