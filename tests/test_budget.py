"""The study and its budget (sweeper/budget.py): a study begun before eval loss was measured over
answer tokens says so when a trainer=hf sweep continues it. No torch."""
import logging

import optuna

from sweeper.budget import StudySpec, open_study
from sweeper.core.layout import EVAL_LOSS, HF_EVAL_LOSS
from sweeper.study import make_storage, study_marks


def _spec(storage, name, trainer="hf"):
    return StudySpec(name, None, storage, optuna.samplers.RandomSampler(seed=0), ["minimize"], ["eval_loss"], "",
                     {"name": "none"}, 2, None, trainer=trainer)


def test_a_study_of_the_older_eval_loss_warns_once_when_continued(tmp_path, caplog):
    storage = make_storage(f"sqlite:///{tmp_path / 'study.db'}")
    older = optuna.create_study(study_name="old", storage=storage)  # as an earlier lr-sweeper left it
    older.tell(older.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}), 1.5)
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
