"""A real single-node SLURM cluster on this machine (Debian, root, no systemd), for the tests and
the bench: munge, MariaDB + slurmdbd (accounting: submitit reads job states with sacct), slurmctld
and slurmd, started directly with settings fit for short test jobs.

    with local_cluster() as cluster:     # reuses a cluster that is already up
        ... hydra.sweeper.slurm.partition={cluster.partition} ...

    python -m bench.slurm_cluster start|stop

SlurmUnavailable(reason) when it cannot be installed or started (not root, no apt-get, ...).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client", "slurmdbd", "mariadb-server")
PARTITION = "debug"
CLUSTER_NAME = "lrsweeper"
SLURM_CONF, DBD_CONF = Path("/etc/slurm/slurm.conf"), Path("/etc/slurm/slurmdbd.conf")
# the daemons' PID files, stopped in this order
PIDS = {"slurmd": "/run/slurmd.pid", "slurmctld": "/run/slurmctld.pid", "slurmdbd": "/run/slurmdbd.pid",
        "mariadbd": "/run/mysqld/mysqld.pid", "munged": "/run/munge/munged.pid"}
QUIET = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # pitfall 6


class SlurmUnavailable(RuntimeError):
    """Why no cluster could be had (a test skips with it)."""


@dataclass
class Cluster:
    partition: str
    started: bool  # False: one was already up and is left running


def _ok(*cmd: str, timeout: float = 10) -> bool:
    try:
        return subprocess.run(cmd, timeout=timeout, **QUIET).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _out(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _wait(ready, what: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not ready():
        if time.time() > deadline:
            raise SlurmUnavailable(f"{what} did not come up in {timeout:.0f} s")
        time.sleep(0.2)


def node_state() -> str:
    return _out("sinfo", "-h", "-o", "%T").strip()


def usable() -> bool:
    """A controller answers and the node takes jobs (idle, or busy with someone's jobs)."""
    return _ok("scontrol", "ping") and node_state().rstrip("*") in ("idle", "mixed", "allocated", "completing")


def install() -> None:
    """The Debian packages, if missing; their init scripts are kept from starting anything."""
    if all(shutil.which(b) for b in ("munged", "slurmctld", "slurmd", "slurmdbd", "sbatch", "mariadbd")):
        return
    if not shutil.which("apt-get"):
        raise SlurmUnavailable("the SLURM packages are missing and there is no apt-get to install them")
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                tail = " ".join((proc.stderr or proc.stdout).split())[-300:]
                raise SlurmUnavailable(f"{' '.join(cmd[:2])} failed: {tail}")
    finally:
        if ours:
            policy.unlink(missing_ok=True)


def _start_munge() -> None:
    if _ok("sh", "-c", "munge -n | unmunge"):
        return
    for d in ("/run/munge", "/var/lib/munge", "/var/log/munge", "/etc/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    Path("/run/munge").chmod(0o755)
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    key.chmod(0o400)
    subprocess.run(["runuser", "-u", "munge", "--", "munged"], check=False, **QUIET)
    _wait(lambda: _ok("sh", "-c", "munge -n | unmunge"), "munged")


def _mariadb_ok() -> bool:
    return _ok("mariadb", "-e", "select 1")


def _start_accounting() -> None:
    """MariaDB and slurmdbd: without accounting a cancelled job's state stays UNKNOWN (pitfall 1)."""
    if not _mariadb_ok():
        Path("/run/mysqld").mkdir(exist_ok=True)
        shutil.chown("/run/mysqld", "mysql", "mysql")
        if not Path("/var/lib/mysql/mysql").exists():
            subprocess.run(["mariadb-install-db", "--user=mysql", "--datadir=/var/lib/mysql"], check=False, **QUIET)
        subprocess.run(["setsid", "-f", "mariadbd", "--user=mysql", "--datadir=/var/lib/mysql",
                        "--socket=/run/mysqld/mysqld.sock", f"--pid-file={PIDS['mariadbd']}",
                        "--skip-networking"], check=False, **QUIET)
        _wait(_mariadb_ok, "mariadbd")
    subprocess.run(["mariadb", "-e", "CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
                    "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm'; "
                    "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"], check=True, **QUIET)
    if _ok("sacctmgr", "-n", "list", "cluster"):
        return
    DBD_CONF.write_text("\n".join([
        "AuthType=auth/munge", "DbdHost=localhost", "SlurmUser=root", "LogFile=/var/log/slurm/slurmdbd.log",
        f"PidFile={PIDS['slurmdbd']}", "StorageType=accounting_storage/mysql", "StorageHost=localhost",
        "StorageUser=slurm", "StoragePass=slurm", "StorageLoc=slurm_acct_db", ""]))
    DBD_CONF.chmod(0o600)
    subprocess.run(["slurmdbd"], check=False, **QUIET)
    _wait(lambda: _ok("sacctmgr", "-n", "list", "cluster"), "slurmdbd")


def _write_slurm_conf(host: str) -> None:
    mem_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
    SLURM_CONF.write_text("\n".join([
        f"ClusterName={CLUSTER_NAME}", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root",
        "AuthType=auth/munge", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
        "SlurmdParameters=config_overrides", "ReturnToService=2",
        "StateSaveLocation=/var/spool/slurmctld", "SlurmdSpoolDir=/var/spool/slurmd",
        f"SlurmctldPidFile={PIDS['slurmctld']}", f"SlurmdPidFile={PIDS['slurmd']}",
        "SlurmctldLogFile=/var/log/slurm/slurmctld.log", "SlurmdLogFile=/var/log/slurm/slurmd.log",
        "KillWait=2",  # submitit's worker ignores SIGTERM: a cancelled job frees its CPU 2 s later
        "SchedulerParameters=batch_sched_delay=0,bf_interval=1",  # jobs start at once
        "AccountingStorageType=accounting_storage/slurmdbd", "AccountingStorageHost=localhost",
        "JobAcctGatherType=jobacct_gather/none",
        # at least 4 CPUs declared (config_overrides lets slurmd accept it): 4 one-CPU trial jobs at once
        # on a 2-core test machine, as the bench's 4 slots need; the trials there mostly sleep
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={max(4, os.cpu_count() or 1)} RealMemory={mem_mb} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))


def start() -> Cluster:
    if usable():
        return Cluster(_default_partition(), started=False)
    if os.geteuid() != 0:
        raise SlurmUnavailable("starting a local SLURM cluster needs root")
    install()
    host = socket.gethostname().split(".")[0]
    for d in ("/var/spool/slurmctld", "/var/spool/slurmd", "/var/log/slurm"):
        Path(d).mkdir(parents=True, exist_ok=True)
    try:
        _write_slurm_conf(host)  # the clients (sacctmgr too) read it
        _start_munge()
        _start_accounting()
        if not _ok("scontrol", "ping"):
            subprocess.run(["slurmctld"], check=False, **QUIET)
            _wait(lambda: _ok("scontrol", "ping"), "slurmctld")
        subprocess.run(["slurmd", "-N", host], check=False, **QUIET)
        _ok("scontrol", "update", f"NodeName={host}", "State=RESUME")  # drained by a past run's stuck job
        _wait(lambda: node_state().rstrip("*") == "idle", "slurmd (node idle)")
    except (OSError, subprocess.CalledProcessError) as err:
        raise SlurmUnavailable(f"could not start the cluster: {err}") from None
    return Cluster(PARTITION, started=True)


def _default_partition() -> str:
    names = _out("sinfo", "-h", "-o", "%P").split()
    return next((n.rstrip("*") for n in names if n.endswith("*")), names[0] if names else PARTITION)


def stop() -> None:
    """Every job cancelled first (job steps outlive slurmd), then the daemons by PID file."""
    if _ok("scontrol", "ping"):
        _ok("scancel", "--user", "root")
        deadline = time.time() + 15
        while _out("squeue", "-h", "-o", "%i").strip() and time.time() < deadline:
            time.sleep(0.3)
    for name, pid_file in PIDS.items():
        try:
            pid = int(Path(pid_file).read_text().split()[0])
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, IndexError):
            continue
        deadline = time.time() + 15
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for init to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@contextmanager
def local_cluster():
    """The cluster for the length of the block; stopped after it only if this call started it."""
    cluster = start()
    try:
        yield cluster
    finally:
        if cluster.started:
            stop()


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    if action not in ("start", "stop"):
        sys.exit("usage: python -m bench.slurm_cluster start|stop")
    try:
        if action == "start":
            c = start()
            print(f"SLURM cluster {'started' if c.started else 'already up'}: partition {c.partition}")
        else:
            stop()
            print("SLURM cluster stopped")
    except SlurmUnavailable as err:
        sys.exit(f"error: {err}")
