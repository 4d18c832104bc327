"""optuna-dashboard shows a sweep right by default: read through optuna-dashboard's own app."""
import json
from wsgiref.util import setup_testing_defaults

import optuna
import pytest

from conftest import FAST, read_json, run_cli

pytestmark = pytest.mark.slow
optuna_dashboard = pytest.importorskip("optuna_dashboard", reason="pip install -e '.[dashboard]'")


def api(app, path: str):
    status = {}
    environ = {"PATH_INFO": path}
    setup_testing_defaults(environ)
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.update(code=s)))
    assert status["code"].startswith("200"), (path, status)
    return json.loads(body)


def test_the_dashboard_names_the_objective_and_shows_outcomes_not_bookkeeping(tmp_path):
    sweep = tmp_path / "dash"
    proc = run_cli(["-m", "lr=1e-3,50", f"hydra.sweep.dir={sweep}", "sweep.name=dash", *FAST])
    assert proc.returncode == 0, proc.stderr[-2000:]
    app = optuna_dashboard.wsgi(optuna.storages.RDBStorage(f"sqlite:///{sweep / 'study.db'}"))
    [summary] = api(app, "/api/studies")["study_summaries"]
    assert summary["study_name"] == "dash" and summary["user_attrs"] == []
    study = api(app, f"/api/studies/{summary['study_id']}")
    assert study["objective_names"] == ["eval_loss"]
    outcomes = {}
    for trial in study["trials"]:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert set(attrs) <= {"outcome", "reason"}, attrs
        outcomes[trial["number"]] = attrs
    diverged = [a for a in outcomes.values() if a["outcome"] == "diverged"]
    assert len(diverged) == 1 and diverged[0]["reason"]  # not just another pruned trial
    assert read_json(sweep / "trials" / "1" / "result.json")["state"] == "diverged"
