"""A stand-in for a training run, for the idle-fraction bench (bench/idle_fraction.py): it sleeps
instead of training. Trial number n sleeps LONG seconds when n % 4 == 0 and SHORT seconds
otherwise (one long trial in every four, so each batch of 4 waits on its long one), and appends
one evaluation to $LR_SWEEPER_METRICS so the trial completes.

    python bench/sleep_trial.py NUMBER TRIAL_DIR LONG SHORT

It records in TRIAL_DIR/busy.json (seconds since the epoch, time.time()'s clock):
  started, ended       when its "training" began and ended
  parent               the process that ran it, as "pid:start ticks" (one process, even where pids
                       are reused): the trial's own `python -m sweeper` (a pool slot's or a SLURM
                       job's), or a launcher's worker, which runs one trial after another
  parent_started       when that process started
Plain Python with the standard library only: it starts in milliseconds.
"""
import json
import os
import sys
import time


def process_started(pid: int) -> tuple[int, float] | tuple[None, None]:
    """A process's start in clock ticks after boot, and on time.time()'s clock (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None, None
    return ticks, time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    started = time.time()
    number, trial_dir, long, short = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    time.sleep(long if number % 4 == 0 else short)
    with open(os.environ["LR_SWEEPER_METRICS"], "a") as f:
        f.write(json.dumps({"step": 1, "eval_loss": 1.0 + number / 100}) + "\n")
    ended = time.time()
    os.makedirs(trial_dir, exist_ok=True)
    with open(os.path.join(trial_dir, "busy.json"), "w") as f:
        ticks, parent_started = process_started(os.getppid())
        json.dump({"number": number, "started": started, "ended": ended, "parent": f"{os.getppid()}:{ticks}",
                   "parent_started": parent_started}, f)


if __name__ == "__main__":
    main()
