"""Bad input, table-driven: one clear line naming the field, exit 2, no traceback, nothing
already saved is touched (an existing sweep directory and its study stay byte-identical)."""
import hashlib
import json
import shutil

import optuna
import pytest

from conftest import EMBEDDED_MODEL, run_cli

SECRET = "s3cretpw"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.jsonl").write_text("")
    (d / "broken.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": \n')
    (d / "nofields.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": "a"}\n')
    (d / "conf").mkdir()
    (d / "conf" / "badcfg.yaml").write_text("defaults:\n  - config\n  - _self_\nlr: -3\n")
    (d / "conf" / "typed.yaml").write_text("defaults:\n  - config\n  - _self_\nbatch_size: abc\n")
    (d / "model").mkdir()
    (d / "model" / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 64}))
    cut = shutil.copytree(EMBEDDED_MODEL, d / "cut")  # an interrupted download: the weights end early
    weights = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    linked = shutil.copytree(EMBEDDED_MODEL, d / "linked")  # a hub cache snapshot copied without its blobs
    (linked / "model.safetensors").unlink()
    (linked / "model.safetensors").symlink_to(d / "blobs" / "0123abcd")
    return d


@pytest.fixture(scope="module")
def existing_sweep(tmp_path_factory):
    """A sweep that already ran: its study and summary must survive every bad command."""
    d = tmp_path_factory.mktemp("existing")
    study = optuna.create_study(study_name="existing", storage=f"sqlite:///{d / 'study.db'}")
    study.enqueue_trial({"lr": 1e-3})
    (d / "summary.md").write_text("# kept\n")
    return d


def snapshot(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}


SINGLE = [
    (["lr=-1"], "lr"),
    (["lr=abc"], "lr"),
    (["batch_size=0"], "batch_size"),
    (["batch_size=10", "micro_batch_size=4"], "batch_size"),
    (["eval_interval=30", "save_interval=100"], "eval_interval"),
    (["max_seq_length=100000"], "max_seq_length"),
    (["scheduler=bogus"], "scheduler"),
    (["scheduler.warmup=100"], "scheduler.warmup"),
    (["precision=fp8"], "precision"),
    (["objective=bleu"], "objective"),
    (["lora.r=0"], "lora.r"),
    (["lora=r7"], "lora"),
    (["model.name_or_path={d}/nowhere"], "model.name_or_path"),
    (["model.name_or_path={d}/model"], "max_seq_length"),  # 128 > its 64-token window
    (["data=local", "data.path={d}/missing.jsonl"], "data.path"),
    (["data=local", "data.path={d}/empty.jsonl"], "data.path"),
    (["data=local", "data.path={d}/broken.jsonl"], "data.path"),
    (["data=local", "data.path={d}/nofields.jsonl"], "data.path"),
    (["data.format=xml"], "data.format"),
    (["lr=(1e-3"], "cannot parse"),
    (["batch_size=abc", "max_steps=1.5"], "batch_size: 'abc' is not accepted; accepted: an integer; "
                                          "max_steps: 1.5 is not accepted"),   # the schema's types, all at once
    (["model.trust_remote_code=maybe"], "accepted: true or false"),
    (["max_steps=[1,2]", "seed={{a: 1}}"], "max_steps: [1, 2] is not accepted"),  # found by the property test
    (["--config-dir", "{d}/conf", "--config-name", "typed"], "batch_size: 'abc' (in config 'typed')"),
    (["lr_sceduler=cosine"], "did you mean scheduler?"),        # Hydra's advice (+key) would be a trap
    (["+lora_rank=64"], "did you mean lora.r?"),                # accepted and ignored before
    (["hydra.sweeper.n_trails=4"], "did you mean hydra.sweeper.n_trials?"),
    (["--config-dir", "{d}/conf", "--config-name", "badcfg"], "lr"),
    (["model.name_or_path={d}/cut"], "model.name_or_path: {d}/cut/model.safetensors is cut short"),
    (["model.name_or_path={d}/linked"], "model.name_or_path: {d}/linked/model.safetensors is missing"),
    (["scheduler=warmup_stable_decay", "scheduler.decay_type=cosin"], "scheduler.decay_type: 'cosin' is not "
                                                                       "accepted; accepted: cosine, linear, 1-sqrt"),
    (["scheduler=cosine_with_min_lr", "scheduler.min_lr_rate=2"], "scheduler.min_lr_rate: 2 is not accepted"),
    (["scheduler.decay_ratio=1.5"], "scheduler.decay_ratio: 1.5 is not accepted; accepted: a number > 0 and <= 1"),
]
SWEEP = [
    (["lr=1e-4,1e-3", "hydra.sweeper.sampler=bogus"], "hydra.sweeper.sampler"),
    (["lr=1e-4,1e-3", "hydra.sweeper.pruner=nah"], "hydra.sweeper.pruner"),
    (["lr=tag(log,interval(0,1e-3))"], "lr"),
    (["lr=tag(log,interval(1e-5,1e-2))", "hydra.sweeper.sampler=grid"], "hydra.sweeper.sampler"),
    (["batch_size=8,10", "micro_batch_size=4"], "batch_size"),
    (["lr=1e-4,1e-3", "hydra.sweeper.parallel=0"], "hydra.sweeper.parallel"),
    (["lr=1e-4,1e-3", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials"),
    (["lr=1e-4,1e-3", "scheduler=cosine,bogus"], "scheduler"),
    (["lr=1e-4,1e-3", f"hydra.sweeper.storage=postgresql://me:{SECRET}@127.0.0.1:9/db"], "hydra.sweeper.storage"),
    (["lr=1e-4,1e-3", f"hydra.sweeper.storage=mongodb://me:{SECRET}@127.0.0.1/db"], "hydra.sweeper.storage"),
    (["lr=1e-4,1e-3", "objective=eval_accuracy"], "objective"),  # the study minimises
    (["lr=1e-4,1e-3", "lora.targets=[query,bogus]"], "lora.targets"),  # checked before any trial runs
    (["lr_sceduler=cosine,linear"], "did you mean scheduler?"),
    (["model=glob(*)"], "glob() is not supported in a sweep"),       # a traceback before
    (["lr=glob(*)"], "glob() is not supported in a sweep"),
    (["lr=tag(lg,interval(1e-5,1e-3))"], "unknown tag lg; accepted: log"),  # silently ignored before
    (["lr=tag(log,choice(1e-4,1e-3))"], "applies to an interval only"),
    (["lr=1e-4,1e-3", "hydra.sweeper.pruner=percentile", "hydra.sweeper.percentile=high"],
     "hydra.sweeper.percentile: 'high' is not accepted; accepted: a number from 0 to 100"),
    (["lr=1e-4,1e-3", "hydra.sweeper.percentile=150"], "hydra.sweeper.percentile: 150"),
    (["lr=1e-4,1e-3", "hydra.sweeper.storage=sqlite:////proc/study.db"], "hydra.sweeper.storage: cannot open"),
    (["lr=1e-4,1e-3", "hydra.sweeper.storage=sqlite:////dev/null/sub/study.db"],
     "hydra.sweeper.storage: cannot create the folder of sqlite:////dev/null/sub/study.db"),
    (["lora.r=interval(4.5,16)"], "lora.r: interval(4.5, 16) over an integer setting needs integer ends"),
]


def check(proc, field):
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-500:], proc.stderr[-1500:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and field in lines[-1], proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert SECRET not in proc.stderr + proc.stdout


@pytest.mark.parametrize("args, field", SINGLE, ids=[" ".join(a) for a, _ in SINGLE])
def test_single_run_bad_input(args, field, files, tmp_path):
    args, field = [a.format(d=files) for a in args], field.format(d=files)
    proc = run_cli([*args, f"hydra.run.dir={tmp_path / 'run'}"] if "--config-dir" not in args else
                   [*args, f"hydra.run.dir={tmp_path / 'run'}"])
    check(proc, field)
    assert not (tmp_path / "run" / "result.json").exists()


@pytest.mark.parametrize("args, field", SWEEP, ids=[" ".join(a) for a, _ in SWEEP])
def test_sweep_bad_input_leaves_the_existing_sweep_alone(args, field, existing_sweep):
    before = snapshot(existing_sweep)
    proc = run_cli(["-m", "sweep.name=existing", f"hydra.sweep.dir={existing_sweep}", *args])
    check(proc, field)
    assert snapshot(existing_sweep) == before
    assert not (existing_sweep / "trials").exists()
