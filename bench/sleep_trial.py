"""A stand-in for a training run, for the idle-fraction bench (bench/idle_fraction.py): it sleeps
instead of training. Trial number n sleeps LONG seconds when n % 4 == 0 and SHORT seconds
otherwise (one long trial in every four, so each batch of 4 waits on its long one), appends one
evaluation to $LR_SWEEPER_METRICS so the trial completes, and records when its "training" began
and ended in TRIAL_DIR/busy.json (time.time(), seconds since the epoch).

    python bench/sleep_trial.py NUMBER TRIAL_DIR LONG SHORT

Plain Python with the standard library only: it starts in milliseconds.
"""
import json
import os
import sys
import time

started = time.time()
number, trial_dir, long, short = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
time.sleep(long if number % 4 == 0 else short)
with open(os.environ["LR_SWEEPER_METRICS"], "a") as f:
    f.write(json.dumps({"step": 1, "eval_loss": 1.0 + number / 100}) + "\n")
ended = time.time()
os.makedirs(trial_dir, exist_ok=True)
with open(os.path.join(trial_dir, "busy.json"), "w") as f:
    json.dump({"number": number, "started": started, "ended": ended}, f)
