"""Two sweeper processes on one PostgreSQL study: the multi-machine setup, on loopback."""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from test_sweep import assert_split_without_duplicates, run_two_sweepers

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
PASSWORD = "Pg-s3cret-7731"


def pg_bin(name):
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        pytest.skip(f"PostgreSQL server binary {name} not installed (.ci/run installs it)")
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url():
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    # not under pytest's tmp dir: that is private to root, and the server runs as another user
    tmp_path = Path(tempfile.mkdtemp(prefix="lr-sweeper-pg-"))
    data, port = tmp_path / "pgdata", free_port()
    data.mkdir()
    demote = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = next((u for u in ("postgres", "nobody") if _has_user(u)))
        entry = pwd.getpwnam(user)
        os.chown(tmp_path, entry.pw_uid, entry.pw_gid)
        os.chown(data, entry.pw_uid, entry.pw_gid)

        def demote():
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
    run = dict(preexec_fn=demote, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    out = subprocess.run([initdb, "-D", str(data), "-U", "sweeper", "--auth=trust", "-E", "UTF8"], **run)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([pg_ctl, "-D", str(data), "-l", str(tmp_path / "pg.log"), "-w", "-o",
                          f"-c listen_addresses=127.0.0.1 -p {port} -k {tmp_path}", "start"], **run)
    assert out.returncode == 0, out.stderr + (tmp_path / "pg.log").read_text()
    try:
        yield f"postgresql://sweeper:{PASSWORD}@127.0.0.1:{port}/postgres"  # trust auth: any password works
    finally:
        subprocess.run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], **run)
        shutil.rmtree(tmp_path, ignore_errors=True)


def _has_user(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_two_processes_share_a_postgres_study(postgres_url, tmp_path):
    sweep = tmp_path / "pg-sweep"
    outs = run_two_sweepers(sweep, "pg", [f"hydra.sweeper.storage={postgres_url}"])
    study = optuna.load_study(study_name="pg", storage=postgres_url)
    assert_split_without_duplicates(study, sweep, outs)
    # the password never appears: not in any file of the sweep (configs, summaries, best.yaml, logs,
    # TensorBoard events), not in what the sweepers printed
    for path in sweep.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert all(PASSWORD not in out for out in outs)
    assert "***" in (sweep / "sweep.json").read_text()
