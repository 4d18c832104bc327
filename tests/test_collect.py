"""Results from trial directories alone (sweeper/collect.py, report, best_config, redact). No torch."""
import json

import pandas as pd
import pytest
import yaml

from sweeper.collect import build_table, refresh
from sweeper.table_text import to_markdown
from sweeper.redact import redact
from sweeper.report import main as report_main


def make_trial(sweep, n, state, value, lr, steps=10, write_result=True):
    d = sweep / "trials" / str(n)
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"lr={lr}", f"trial.number={n}",
                                                                "sweep.name=s"]))
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump({
        "lr": lr, "seed": 1, "trial": {"study": "s", "number": n, "resume_from": None, "repeat_of": None},
        "sweep": {"name": "s"}}))
    (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": 3.0 - s / 10, "lr": lr}) + "\n"
                                             for s in range(1, steps + 1)) +
                                     json.dumps({"step": steps, "eval_loss": value}) + "\n")
    if write_result:
        (d / "result.json").write_text(json.dumps({
            "state": state, "reason": "" if state == "complete" else f"{state} because", "value": value,
            "eval_loss": value, "best_eval_loss": value, "steps": steps, "micro_batch_size": 4,
            "gradient_accumulation_steps": 2, "params": {"lr": lr, "batch_size": 8}}))
    return d


@pytest.fixture
def sweep(tmp_path):
    s = tmp_path / "sweep"
    s.mkdir()
    (s / "sweep.json").write_text(json.dumps({"study": "s", "objective": "eval_loss", "direction": "minimize",
                                              "search_space": {"lr": "..."}, "sampler": "grid",
                                              "pruner": {"name": "median"}}))
    make_trial(s, 0, "complete", 2.0, 1e-3)
    make_trial(s, 1, "complete", 1.5, 3e-3)
    make_trial(s, 2, "pruned", 2.5, 1e-5, steps=3)
    make_trial(s, 3, "diverged", None, 1.0, steps=2)
    make_trial(s, 4, None, None, 1e-4, steps=4, write_result=False)   # killed mid-trial
    d = make_trial(s, 5, "complete", 0.1, 1e-2, write_result=False)
    (d / "result.json").write_text('{"state": "compl')                 # half-written
    d = make_trial(s, 6, None, None, 1e-2, write_result=False)        # garbage everywhere
    (d / "metrics.jsonl").write_bytes(b"\x00\xff{not json\n")
    (d / ".hydra" / "overrides.yaml").write_text(": : [")
    (d / "result.json").write_text("[1, 2]")
    return s


def test_table_ranks_marks_the_winner_and_shows_broken_trials_as_failed(sweep):
    table = build_table(sweep)
    assert list(table["trial"]) == [1, 0, 2, 3, 4, 5, 6]
    assert list(table["state"]) == ["complete", "complete", "pruned", "diverged", "failed", "failed", "failed"]
    assert table.loc[0, "best"] == "*" and (table["best"] == "*").sum() == 1
    assert table.loc[0, "effective_batch"] == 8
    reasons = dict(zip(table["trial"], table["reason"]))
    assert "killed" in reasons[4] and "unreadable result.json" in reasons[5] and "unreadable" in reasons[6]
    assert table.loc[table["trial"] == 4, "steps"].item() == 4  # read from its metrics.jsonl


def test_a_running_trial_is_not_called_failed(sweep):
    table = build_table(sweep, running={4})
    assert table.loc[table["trial"] == 4, "state"].item() == "running"


def test_maximised_objective_ranks_high_first(sweep):
    info = json.loads((sweep / "sweep.json").read_text())
    (sweep / "sweep.json").write_text(json.dumps({**info, "objective": "eval_loss", "direction": "maximize"}))
    assert build_table(sweep).loc[0, "trial"] == 0


def test_refresh_writes_every_output_and_best_yaml_reruns_the_winner(sweep):
    refresh(sweep)
    for name in ("summary.csv", "summary.md", "curves.png", "best.yaml"):
        assert (sweep / name).stat().st_size > 0, name
    text = (sweep / "best.yaml").read_text()
    assert text.startswith("# Best trial of study s: trial 1, eval_loss = 1.5")
    best = yaml.safe_load(text)
    assert best["lr"] == 3e-3 and best["trial"]["number"] is None and best["trial"]["study"] is None
    assert "_self_" in best["defaults"]
    winner = [line for line in (sweep / "summary.md").read_text().splitlines() if "| *" in line]
    assert len(winner) == 1 and "complete" in winner[0]
    assert list((sweep / "trials" / "1" / "tb").glob("*.lrsweeper-session-complete"))
    assert list(sweep.glob("*.lrsweeper-experiment-*"))


def test_report_cli_rebuilds_and_prints(sweep, capsys):
    report_main([str(sweep)])
    out = capsys.readouterr().out
    assert "| complete" in out and "unreadable result.json" in out


@pytest.mark.parametrize("text, shown", [
    ("postgresql://me:pa55@db:5432/optuna", "postgresql://me:***@db:5432/optuna"),
    ("cannot open mysql+pymysql://u:p@h/db: refused", "cannot open mysql+pymysql://u:***@h/db: refused"),
    ("sqlite:////tmp/x/study.db", "sqlite:////tmp/x/study.db"),
])
def test_redact_hides_passwords_only(text, shown):
    assert redact(text) == shown


def test_printed_table_fits_100_columns_and_summary_md_keeps_every_column(tmp_path):
    s = tmp_path / "wide"
    s.mkdir()
    swept = ["lr", "scheduler", "lora.r", "batch_size", "weight_decay"]
    (s / "sweep.json").write_text(json.dumps({"study": "wide", "objective": "eval_loss", "direction": "minimize",
                                              "search_space": {k: "..." for k in swept}, "sampler": "tpe",
                                              "pruner": {"name": "median"}}))
    for n, (lr, sched, r, bs) in enumerate([(1e-3, "cosine_with_min_lr", 8, 8), (3e-3, "linear", 16, 16),
                                             (1e-2, "warmup_stable_decay", 32, 32)]):
        d = make_trial(s, n, "complete" if n < 2 else "pruned", 2.0 - n / 10, lr)
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([
            f"lr={lr}", f"scheduler={sched}", f"lora.r={r}", f"batch_size={bs}", "weight_decay=0.01",
            f"trial.number={n}"]))
        result = json.loads((d / "result.json").read_text())
        result.update(reason="pruned at step 10: eval loss 2.3 worse than the median of the other trials at "
                      "that step, which was 2.1 (hydra.sweeper.pruner=median)" if n == 2 else "",
                      tokens_per_second=1000.0 + n, tokens=4096, wall_seconds=3.5 + n, peak_memory_mb=0.0,
                      train_loss=2.5, eval_accuracy=0.25 * n, params={"lr": lr, "batch_size": bs, "seed": 1})
        (d / "result.json").write_text(json.dumps(result))
    table = build_table(s)
    info = json.loads((s / "sweep.json").read_text())
    printed = to_markdown(table, info)
    assert max(map(len, printed.splitlines())) <= 100, printed
    header = next(line for line in printed.splitlines() if line.startswith("| "))
    for column in ["trial", "state", "best", "eval_loss", *swept[:3]]:
        assert f" {column} " in header, (column, header)
    assert "summary.md and summary.csv" in printed and "median of the other" in printed
    refresh(s)
    md = (s / "summary.md").read_text()
    md_header = next(line for line in md.splitlines() if line.startswith("| "))
    assert all(f" {c} " in md_header for c in table.columns if c != "reason"), md_header
    assert list(pd.read_csv(s / "summary.csv").columns) == list(table.columns)


def test_a_nan_objective_is_a_diverged_trial_and_the_pictures_still_draw(sweep):
    d = make_trial(sweep, 7, "complete", None, 3e-2)
    result = json.loads((d / "result.json").read_text())
    (d / "result.json").write_text(json.dumps({**result, "value": "nan", "eval_loss": "nan", "objective": "eval_loss"}))
    with open(d / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 11, "loss": "nan", "eval_loss": "nan"}) + "\n")
    table = refresh(sweep)
    row = table[table["trial"] == 7].iloc[0]
    assert row["state"] == "diverged" and row["reason"] == "final eval_loss is nan" and row["best"] == ""
    assert (sweep / "curves.png").stat().st_size > 0


def test_the_effective_batch_counts_every_data_parallel_process(sweep):
    d = sweep / "trials" / "0"
    result = json.loads((d / "result.json").read_text())
    (d / "result.json").write_text(json.dumps({**result, "world_size": 2, "micro_batch_size": 4,
                                               "gradient_accumulation_steps": 1, "params": {"batch_size": 8}}))
    table = build_table(sweep)
    assert table.loc[table["trial"] == 0, "effective_batch"].item() == 8  # 4 x 1 accumulation x 2 processes
