"""TensorBoard HParams (sweeper/hparams.py): one experiment declaring the swept keys with their domains
and the curated metrics, one session per trial with its status; checked in the event files and by a
real TensorBoard server."""
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from optuna.distributions import (CategoricalDistribution, FloatDistribution, IntDistribution,
                                  distribution_to_json)
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

from conftest import run_cli
from sweeper.collect import build_table, refresh
from sweeper.hparams import METRICS, parse_distribution, write_hparams

SPACE = {"lr": FloatDistribution(1e-5, 1e-2, log=True), "lora.r": IntDistribution(4, 8, step=4),
         "scheduler": CategoricalDistribution(["cosine", "linear"])}
CURATED = {f"hparams/{m}" for m in ("eval_loss", "eval_accuracy", "tokens_per_second", "peak_memory_mb", "steps")}


def plugin_data(path: Path) -> dict:
    """tag -> HParamsPluginData (or the scalar value) of every event in the file."""
    out = {}
    for event in EventFileLoader(str(path)).Load():
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "hparams":
                out[value.tag] = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
            else:
                out[value.tag] = value.simple_value
    return out


def make_sweep(root: Path, lr_scaling="none") -> Path:
    sweep = root / "s"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({
        "study": "s", "objective": "eval_loss", "direction": "minimize", "sampler": "tpe",
        "pruner": {"name": "median"}, "search_space": {k: repr(v) for k, v in SPACE.items()}}))
    for n, state in enumerate(["complete", "pruned", "diverged", "failed"]):
        d = sweep / "trials" / str(n)
        (d / ".hydra").mkdir(parents=True)
        lr = [1e-4, 1e-3, 5e-3, 1e-5][n]
        (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(
            [f"lr={lr!r}", f"lora.r={4 + 4 * (n % 2)}", "scheduler=linear", f"trial.number={n}"]))
        (d / "metrics.jsonl").write_text(json.dumps({"step": 2, "loss": 3.0, "eval_loss": 2.5}) + "\n")
        if state != "failed":  # a failed trial without result.json (killed)
            (d / "result.json").write_text(json.dumps({
                "state": state, "reason": "" if state == "complete" else "because", "eval_loss": 2.0 + n,
                "eval_accuracy": 0.5, "steps": 2, "tokens_per_second": 100.0, "peak_memory_mb": 10.0,
                "effective_lr": lr * 2, "params": {"lr": lr, "lora.r": 4, "lr_scaling": lr_scaling}}))
    return sweep


def test_search_space_entries_parse_from_repr_and_from_optunas_json():
    for dist in SPACE.values():
        assert parse_distribution(repr(dist)) == dist
        assert parse_distribution(distribution_to_json(dist)) == dist
        assert parse_distribution(json.loads(distribution_to_json(dist))) == dist
    assert parse_distribution("...") is None and parse_distribution("__import__('os')") is None


def test_one_experiment_declares_the_swept_keys_and_each_session_ends_with_its_status(tmp_path):
    sweep = make_sweep(tmp_path)
    assert write_hparams(sweep, build_table(sweep)) == 4
    [experiment_file] = sweep.glob("*.lrsweeper-experiment-*")
    experiment = plugin_data(experiment_file)["_hparams_/experiment"].experiment
    infos = {h.name: h for h in experiment.hparam_infos}
    assert set(infos) == {"lr", "lora.r", "scheduler"}  # no effective_lr: lr scaling is off
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == (1e-5, 1e-2)
    assert list(infos["lora.r"].domain_discrete) == [4, 8]
    assert list(infos["scheduler"].domain_discrete) == ["cosine", "linear"]
    assert {m.name.tag for m in experiment.metric_infos} == CURATED == {f"hparams/{m}" for m in METRICS}
    statuses, values = {}, {}
    for n in range(4):
        [record] = (sweep / "trials" / str(n) / "tb").glob("*.lrsweeper-session-*")
        data = plugin_data(record)
        statuses[n] = data["_hparams_/session_end_info"].session_end_info.status
        start = data["_hparams_/session_start_info"].session_start_info
        values[n] = {k: v.WhichOneof("kind") for k, v in start.hparams.items()}
        assert start.hparams["lora.r"].number_value == 4 + 4 * (n % 2)
        assert start.group_name.startswith(f"trial {n} ")
    assert statuses == {0: api_pb2.STATUS_SUCCESS, 1: api_pb2.STATUS_UNKNOWN, 2: api_pb2.STATUS_FAILURE,
                        3: api_pb2.STATUS_FAILURE}
    assert values[0] == {"lr": "number_value", "lora.r": "number_value", "scheduler": "string_value"}
    assert write_hparams(sweep, build_table(sweep)) == 0  # finished records are not rewritten


def test_effective_lr_only_with_lr_scaling_and_older_records_replaced(tmp_path):
    sweep = make_sweep(tmp_path, lr_scaling="sqrt")
    legacy = sweep / "trials" / "0" / "tb" / "events.out.tfevents.1.host.1.0.lrsweeper-hparams"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(b"")
    refresh(sweep)
    assert not legacy.exists()
    [experiment_file] = sweep.glob("*.lrsweeper-experiment-*")
    infos = {h.name: h for h in plugin_data(experiment_file)["_hparams_/experiment"].experiment.hparam_infos}
    assert "effective_lr" in infos and infos["effective_lr"].domain_interval.max_value == 1e-2
    [record] = (sweep / "trials" / "0" / "tb").glob("*.lrsweeper-session-*")
    start = plugin_data(record)["_hparams_/session_start_info"].session_start_info
    assert start.hparams["effective_lr"].number_value == 2e-4


# ----- a real sweep, a real TensorBoard ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict, timeout: float = 10) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


ALL_STATUSES = ["STATUS_FAILURE", "STATUS_RUNNING", "STATUS_SUCCESS", "STATUS_UNKNOWN"]


def groups_request(experiment: dict, statuses=ALL_STATUSES) -> dict:
    """What TensorBoard's frontend sends (webfiles: fetchSessionGroups), metric columns added."""
    columns = [{"hparam": h["name"], "includeInResult": True} for h in experiment["hparamInfos"]]
    columns += [{"metric": m["name"], "includeInResult": True} for m in experiment["metricInfos"]]
    return {"experimentName": "", "allowedStatuses": statuses, "colParams": columns, "startIndex": 0,
            "sliceSize": 1000000}


@pytest.mark.slow
def test_tensorboard_shows_the_swept_hparams_with_domains_curated_metrics_and_statuses(tmp_path):
    sweep = tmp_path / "tb"
    fast = ["max_steps=4", "eval_interval=2", "save_interval=4", "data.max_eval_examples=8", "batch_size=4",
            "micro_batch_size=4"]
    proc = run_cli(["-m", f"hydra.sweep.dir={sweep}", "sweep.name=tb", "lr=tag(log,interval(1e-3,3e-2))",
                    "lora.r=range(4,9,4)", "scheduler=cosine,linear", "hydra.sweeper.n_trials=3",
                    "hydra.sweeper.sampler=random", "hydra.sweeper.pruner=none", *fast])
    assert proc.returncode == 0, proc.stderr[-2000:]
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(sweep),
                               "--host", "127.0.0.1", "--port", str(port), "--load_fast=false"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/hparams"
    try:
        groups, experiment, deadline = [], {}, time.time() + 120
        while time.time() < deadline and len(groups) < 3:
            try:
                experiment = post(f"{base}/experiment", {"experimentName": "", "hparamsLimit": 1000,
                                                         "includeMetrics": True})
                groups = post(f"{base}/session_groups", groups_request(experiment)).get("sessionGroups", [])
            except OSError:
                pass
            time.sleep(1)
        infos = {h["name"]: h for h in experiment["hparamInfos"]}
        assert set(infos) == {"lr", "lora.r", "scheduler"}, infos
        assert infos["lr"]["domainInterval"] == {"minValue": 1e-3, "maxValue": 3e-2}
        assert infos["lora.r"]["domainDiscrete"] == [4, 8]
        assert sorted(infos["scheduler"]["domainDiscrete"]) == ["cosine", "linear"]
        assert {m["name"]["tag"] for m in experiment["metricInfos"]} == CURATED
        assert len(groups) == 3, groups
        for group in groups:
            assert set(group["hparams"]) == {"lr", "lora.r", "scheduler"}
            r = group["hparams"]["lora.r"]
            assert r in (4, 8) and float(r).is_integer()  # the proto has one number type: integral, not cast
            assert 1e-3 <= group["hparams"]["lr"] <= 3e-2
            assert {m["name"]["tag"] for m in group["metricValues"]} <= CURATED
            assert "hparams/eval_loss" in {m["name"]["tag"] for m in group["metricValues"]}
            [session] = group["sessions"]
            assert session["status"] == "STATUS_SUCCESS" and session["name"].startswith("trials/")
        failures = post(f"{base}/session_groups", groups_request(experiment, ["STATUS_FAILURE"]))
        assert failures.get("sessionGroups", []) == []
    finally:
        server.terminate()
        server.wait(timeout=30)
