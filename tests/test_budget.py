"""The study and its budget (sweeper/budget.py): a study begun before eval loss was measured over
answer tokens says so when a trainer=hf sweep continues it; a sweeper asking from an older read of
the study never runs a slot another sweeper took. No torch."""
import logging

import optuna
from optuna.trial import TrialState

from sweeper.budget import StudySpec, ask_slot, open_study
from sweeper.core.layout import BUDGET_READY, EVAL_LOSS, HF_EVAL_LOSS, SLOT, SURPLUS
from sweeper.study import enqueue_slot, make_storage, set_study_marks, study_marks


def _spec(storage, name, trainer="hf"):
    return StudySpec(name, None, storage, optuna.samplers.RandomSampler(seed=0), ["minimize"], ["eval_loss"], "",
                     {"name": "none"}, 2, None, trainer=trainer)


def test_a_study_of_the_older_eval_loss_warns_once_when_continued(tmp_path, caplog):
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    older = optuna.create_study(study_name="old", storage=storage)  # as an earlier lr-sweeper left it
    older.tell(older.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}), 1.5)
    set_study_marks(storage, "old", {BUDGET_READY: True})  # else open_study waits 60 s for its maker's budget
    with caplog.at_level(logging.WARNING, logger="sweeper"):
        open_study(_spec(storage, "old"))
        open_study(_spec(storage, "old"))
    assert caplog.text.count("measured eval_loss as the Trainer's mean of batch means") == 1
    assert study_marks(storage, "old")[EVAL_LOSS] == HF_EVAL_LOSS
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sweeper"):
        open_study(_spec(storage, "new"))
        open_study(_spec(storage, "new"))  # made now: no warning
        open_study(_spec(storage, "old-cmd", trainer="command"))  # its command measures its own loss
    assert "mean of batch means" not in caplog.text
    assert study_marks(storage, "new")[EVAL_LOSS] == HF_EVAL_LOSS and EVAL_LOSS not in study_marks(storage, "old-cmd")


def test_a_sweeper_asking_from_an_older_read_takes_only_free_slots_then_stops(tmp_path):
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    ours = open_study(_spec(storage, "s"))  # n_trials=2: slots 0 and 1
    theirs = optuna.load_study(study_name="s", storage=storage)
    space = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}
    waiting = ours.get_trials(deepcopy=False, states=(TrialState.WAITING,))  # the round's read: [0, 1]
    older = list(waiting)
    taken = theirs.ask(space)  # after our read, the other sweeper pops slot 0
    enqueue_slot(theirs, {})  # and enqueues slot 2 (as a stale trial's retry is)
    first = ask_slot(ours, storage, space, waiting)
    second = ask_slot(ours, storage, space, waiting)  # our read lists only slot 0 now: read again, slot 2
    assert [first[0].number, second[0].number] == [1, 2]
    assert first[1].system_attrs[SLOT] and second[1].system_attrs[SLOT]
    assert ask_slot(ours, storage, space, waiting) is None and waiting == []  # read again: none left
    assert len(ours.get_trials(deepcopy=False)) == 3  # and no trial made for nothing
    # asked from the older read without reading again: the trial Optuna makes has no slot, and is failed
    assert ask_slot(ours, storage, space, older[:1], free=0) is None
    trials = ours.get_trials(deepcopy=False)
    assert [t.number for t in trials if t.system_attrs.get(SURPLUS)] == [3] and trials[3].state == TrialState.FAIL
    assert trials[taken.number].state == TrialState.RUNNING  # the other sweeper's, untouched
