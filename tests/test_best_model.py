"""The best model: the winner's adapter exported and loadable, an Optuna artifact, checkpoints kept
by keep_checkpoints, best.merge=true writes a merged model."""
import json

import optuna
import pytest

from conftest import FAST, read_json, run_cli

pytestmark = pytest.mark.slow


def test_the_winners_adapter_is_exported_loadable_and_an_artifact(tmp_path):
    sweep = tmp_path / "best"
    proc = run_cli(["-m", "lr=1e-3,1e-2,1e-6,2e-6", f"hydra.sweep.dir={sweep}", "sweep.name=best", "best.merge=true",
                    "max_steps=12", "eval_interval=3", "save_interval=6", "data.max_eval_examples=16",
                    "hydra.sweeper.n_warmup_steps=0", "hydra.sweeper.n_startup_trials=2"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    best = read_json(sweep / "best.json")
    assert best["model"] == str(sweep / "best") and f"best model: {sweep / 'best'}" in proc.stdout
    assert f"# Its trained adapter: {sweep / 'best'}" in (sweep / "best.yaml").read_text()
    from peft import AutoPeftModelForCausalLM, PeftModel
    model = AutoPeftModelForCausalLM.from_pretrained(str(sweep / "best"))
    assert isinstance(model, PeftModel)
    winner_adapter = (sweep / "trials" / str(best["trial"]) / "final" / "adapter_model.safetensors").read_bytes()
    assert (sweep / "best" / "adapter_model.safetensors").read_bytes() == winner_adapter
    assert (sweep / "best-merged" / "config.json").is_file()  # best.merge=true
    # the best trial carries its adapter as an Optuna artifact
    storage = optuna.storages.RDBStorage(f"sqlite:///{sweep / 'study.db'}")
    study = optuna.load_study(study_name="best", storage=storage)
    metas = optuna.artifacts.get_all_artifact_meta(study.best_trial, storage=storage)
    assert [m.filename for m in metas] == ["adapter_model.safetensors"]
    # keep_checkpoints=best: the winner's checkpoints stay; pruned and other complete trials' go
    for trial in study.trials:
        checkpoints = list((sweep / "trials" / str(trial.number)).glob("checkpoint-*"))
        assert bool(checkpoints) == (trial.number == best["trial"]), (trial.number, trial.user_attrs)


def test_keep_checkpoints_all_keeps_a_pruned_trials(tmp_path):
    sweep = tmp_path / "all"
    proc = run_cli(["-m", "lr=1e-2,1e-6", "keep_checkpoints=all", f"hydra.sweep.dir={sweep}", *FAST])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(list(d.glob("checkpoint-*")) for d in (sweep / "trials").iterdir())
    assert json.loads((sweep / "best.json").read_text())["model"]


def test_a_winner_whose_merged_model_was_removed_is_exported_with_the_note_that_rebuilds_it(tmp_path, caplog):
    # a later run of the sweep (seed repeats) can crown a trial whose LitGPT merged model an earlier end removed
    import pandas as pd

    from sweeper.best_model import after_sweep, export
    for n in (0, 1):
        final = tmp_path / "trials" / str(n) / "final"
        final.mkdir(parents=True)
        (final / "lit_model.pth").write_bytes(b"merged")
        (final / "lit_model.pth.lora").write_bytes(b"adapter")
    first = pd.DataFrame({"trial": [0, 1], "state": ["complete", "complete"], "best": ["*", ""]})
    after_sweep(tmp_path, first, "best")
    assert (tmp_path / "trials" / "0" / "final" / "lit_model.pth").is_file()
    assert not (tmp_path / "trials" / "1" / "final" / "lit_model.pth").exists()
    later = pd.DataFrame({"trial": [0, 1], "state": ["complete", "complete"], "best": ["", "*"]})
    out = export(tmp_path, later)
    assert (out / "lit_model.pth.lora").read_bytes() == b"adapter"
    assert "litgpt merge_lora" in (out / "lit_model.pth.removed.txt").read_text()
    assert "rebuild it with: litgpt merge_lora" in caplog.text
    assert not list(tmp_path.glob(".best.new-*"))  # the staging copy is gone
    nobody = pd.DataFrame({"trial": [0], "state": ["complete"], "best": [""]})
    after_sweep(tmp_path, nobody, "best")  # no winner: nothing is removed
    assert (tmp_path / "trials" / "0" / "final" / "lit_model.pth").is_file()
