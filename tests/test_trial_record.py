"""The trial record (sweeper/core/record.py): metrics.jsonl as a child appends it, and the state a result settles on."""
from sweeper.core.record import MetricsTail, read_metrics


def test_a_live_metrics_file_reads_like_read_metrics_as_it_grows(tmp_path):
    path, tail = tmp_path / "metrics.jsonl", MetricsTail(tmp_path)
    assert tail() == []  # no file yet
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')  # the second line is still being written
    assert tail() == [{"step": 1, "loss": 2.0}]
    with open(path, "a") as f:
        f.write('ss": 1.5}\n{"step": "x"}\n{"step": 3, "eval_loss": 1.0}\n')
    assert tail() == read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5},
                                                 {"step": 3, "eval_loss": 1.0}]
    with open(path, "a") as f:
        f.write('not json\n{"step": 4, "loss": 1.0}\n')  # a torn line: what follows is suspect
    assert tail() == read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5},
                                                 {"step": 3, "eval_loss": 1.0}]


def test_a_run_whose_objective_ends_nan_is_recorded_diverged_not_complete(tmp_path):
    from sweeper.core.record import TrialResult, TrialState, read_result, write_result
    result = TrialResult(state=TrialState.COMPLETE, objective="eval_loss", value=float("nan"))
    assert result.state == TrialState.DIVERGED and result.reason == "final eval_loss is nan"
    write_result(tmp_path, result)
    assert read_result(tmp_path)["state"] == "diverged"
    fine = TrialResult(state=TrialState.COMPLETE, objective="eval_loss", value=1.5)
    pruned = TrialResult(state=TrialState.PRUNED, reason="pruned", objective="eval_loss", value=float("inf"))
    assert fine.state == TrialState.COMPLETE and pruned.state == TrialState.PRUNED and pruned.reason == "pruned"
