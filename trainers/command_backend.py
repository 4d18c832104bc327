"""trainer=command: any training command line as the trial, pruned live.

    python -m sweeper -m trainer=command lr='tag(log,interval(1e-4,1e-2))' \
        trainer.cmd='python train.py --lr ${lr} --out ${trial.dir}'

trainer.cmd is resolved by OmegaConf against the trial's config (no template language of our
own), split like a shell would (shlex; no shell runs it: use `bash -c '...'` for pipes), and run
in the sweep's working directory. It reports by appending JSON lines such as
{"step": 10, "eval_loss": 1.23} (the objective's name as key; "loss" for train loss) to
$LR_SWEEPER_METRICS, its trial's metrics.jsonl; or, with trainer.metrics=tensorboard, by writing
TensorBoard scalars anywhere under its trial directory (trainer.tags maps our names to its tags;
flush after each evaluation). A command cannot be resumed by us: a trial run again starts afresh.
"""
from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Mapping

from sweeper.core.contract import Reporter
from sweeper.core.errors import ConfigError
from sweeper.core.layout import METRICS_ENV
from sweeper.core.record import METRICS_FILE, MetricsTail
from trainers.process_trial import ProcessBackend, ChildTrial, common_problems, run_child
from trainers.tensorboard_rows import TensorBoardRows

METRIC_SOURCES = ("jsonl", "tensorboard")
EXAMPLE = "trainer.cmd='python train.py --lr ${lr} --out ${trial.dir}'"


class CommandBackend(ProcessBackend):
    name = "command"

    def problems(self, cfg: Mapping, read_data: bool = True) -> list[ConfigError]:
        errors = common_problems(dict(cfg), self.name)
        trainer = cfg.get("trainer") or {}
        cmd = trainer.get("cmd")
        if cmd is None or not str(cmd).strip():
            errors.append(ConfigError("trainer.cmd", f"is empty; accepted: a command line, e.g. {EXAMPLE}"))
        else:
            try:
                program = shlex.split(str(cmd))[0]
                if shutil.which(program) is None:  # relative to the sweep's working directory, as it runs
                    errors.append(ConfigError("trainer.cmd", f"{program!r} is not a program found on PATH or an "
                                              f"executable file; accepted: a command line, e.g. {EXAMPLE}"))
            except ValueError as err:
                errors.append(ConfigError("trainer.cmd", f"cannot be split into words ({err}); accepted: a "
                                          "command line with balanced quotes"))
        if trainer.get("metrics") not in METRIC_SOURCES:
            errors.append(ConfigError("trainer.metrics", f"{trainer.get('metrics')!r} is not accepted; "
                                      f"accepted: {', '.join(METRIC_SOURCES)}"))
        return errors

    def run(self, cfg: Mapping, trial_dir: Path, reporter: Reporter | None = None,
            started: float | None = None) -> dict:
        cfg, trial_dir = dict(cfg), Path(trial_dir)
        trainer, objective = cfg["trainer"], cfg["objective"]
        trial_dir.mkdir(parents=True, exist_ok=True)
        metrics = trial_dir / METRICS_FILE
        metrics.unlink(missing_ok=True)  # a trial run again starts its rows again
        if trainer["metrics"] == "tensorboard":
            tags = {name: tag for name, tag in (trainer.get("tags") or {}).items() if tag}
            read, writes, hint = TensorBoardRows(trial_dir, tags), False, \
                f"as the TensorBoard tag {tags.get(objective, objective)!r} under {trial_dir} " \
                f"(trainer.tags.{objective}=TAG names another)"
        else:
            read, writes, hint = MetricsTail(trial_dir), True, \
                f'to {metrics} ($LR_SWEEPER_METRICS) as JSON lines like {{"step": 10, "{objective}": 1.23}}'
        max_steps = int(cfg["max_steps"]) if int(cfg["max_steps"]) > 0 else None
        child = ChildTrial(argv=shlex.split(str(trainer["cmd"])), read_rows=read, env={METRICS_ENV: str(metrics)},
                           writes_metrics_file=writes, max_steps=max_steps, no_metrics_hint=hint)
        return run_child(child, cfg, trial_dir, reporter, started)
