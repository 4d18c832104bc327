"""A trial resumes only a checkpoint of its own config, and a resumed trial's tokens/s counts only what
it trained (trainers/checkpoints.py, trainers/train.py)."""
import json
from pathlib import Path

import pytest

from conftest import FAST, compose, read_json, run_cli
from sweeper.core.errors import ConfigError

pytestmark = pytest.mark.slow


def snapshot(directory):
    """The trial's own files (Hydra rewrites .hydra/ and the job log before the trial starts)."""
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*"))
            if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log"}


def test_a_checkpoint_of_another_config_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "run"
    first = run_cli([f"hydra.run.dir={out}", "lr=1e-3", *FAST])
    assert first.returncode == 0, first.stderr[-2000:]
    before = snapshot(out)
    assert any(p.name == "lr_sweeper_config.json" for p in before)

    other = run_cli([f"hydra.run.dir={out}", "lr=3e-4", *FAST])
    assert other.returncode == 2, other.stderr[-2000:]
    errors = [line for line in other.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in other.stderr
    assert f"trial dir {out} holds a checkpoint of another config (lr 0.001 there, 0.0003 here)" in errors[0]
    assert snapshot(out) == before  # nothing trained, rewritten or deleted

    again = run_cli([f"hydra.run.dir={out}", "lr=1e-3", *FAST, "log_interval=2"])  # logging is not training
    assert again.returncode == 0, again.stderr[-2000:]
    result = read_json(out / "result.json")
    assert result["state"] == "complete" and result["resumed_from"].endswith("checkpoint-6")
    assert result["eval_loss"] == pytest.approx(json.loads(before[Path("result.json")])["eval_loss"], rel=1e-5)


def test_a_checkpoint_without_a_fingerprint_is_refused(tmp_path):
    from trainers.checkpoints import FINGERPRINT
    from trainers.train import train
    cfg = compose(FAST)
    train(cfg, tmp_path)
    (next(tmp_path.glob("checkpoint-*")) / FINGERPRINT).unlink()  # as an older lr-sweeper wrote it
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="holds checkpoint-6 with no config record") as err:
        train(cfg, tmp_path)
    assert err.value.field == "hydra.run.dir"
    assert snapshot(tmp_path) == before


def test_a_retry_adopts_only_a_checkpoint_of_its_own_config(tmp_path):
    from trainers.checkpoints import resume_point
    from trainers.train import train
    dead = tmp_path / "trials" / "0"
    train(compose(FAST), dead)
    retry = tmp_path / "trials" / "1"
    same = compose([*FAST, "trial.number=1", f"trial.resume_from={dead}"])  # trial.* is not the config
    assert resume_point(retry, same).endswith("checkpoint-6")

    other = tmp_path / "trials" / "2"
    cfg = compose([*FAST, "lora.r=4", "trial.number=2", f"trial.resume_from={dead}"])
    with pytest.raises(ConfigError, match=r"^sweep\.name: trial dir .*trials/0 holds a checkpoint of another "
                                          r"config \(lora\.r 8 there, 4 here\)"):
        resume_point(other, cfg)
    assert not other.exists()  # nothing adopted


class PruneAt:
    """A study reporter whose pruner stops the trial at `step`: a run cut short with a checkpoint."""

    def __init__(self, step):
        self.step, self.last = step, 0

    def report(self, value, step):
        self.last = step

    def should_prune(self):
        return self.last >= self.step


def test_a_resumed_trial_counts_only_the_tokens_it_trained(tmp_path):
    from trainers.train import train
    cfg = compose([*FAST, "save_interval=3"])
    part = train(cfg, tmp_path, reporter=PruneAt(3))
    assert part["state"] == "pruned" and part["steps"] == 3
    at_resume = json.loads((tmp_path / "checkpoint-3" / "trainer_state.json").read_text())["num_input_tokens_seen"]
    assert at_resume == part["tokens"] > 0

    rest = train(cfg, tmp_path)
    assert rest["state"] == "complete" and rest["steps"] == 6 and rest["resumed_from"].endswith("checkpoint-3")
    assert rest["tokens_trained"] == rest["tokens"] - at_resume > 0  # tokens stays the run's total
    # exact accounting: the rate is this process's tokens over this process's training time
    assert rest["tokens_per_second"] * rest["fit_seconds"] == pytest.approx(rest["tokens_trained"], rel=1e-2)
    # a sanity bound only: runs of a few 0.1 s steps on a shared CPU vary ~10x (warm-up, other load);
    # counting from step 0 over this process's time gave ~1e13 tokens/s
    ratio = rest["tokens_per_second"] / part["tokens_per_second"]
    assert 0.01 < ratio < 100, (rest["tokens_per_second"], part["tokens_per_second"])
