"""`python -m sweeper --help`: the app's own help (conf/hydra/help/lr_sweeper.yaml), not Hydra's default."""
import re

import pytest
import yaml

from conftest import ROOT, run_cli


@pytest.fixture(scope="module")
def help_text() -> str:
    proc = run_cli(["--help"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_help_names_the_app_and_not_hydras_placeholder(help_text):
    assert help_text.startswith("lr-sweeper:")
    assert "__main__ is powered by Hydra" not in help_text
    for part in ("== Sweep examples ==", "python -m sweeper -m", "== Configuration groups", "scheduler: ",
                 "== Config ", "max_steps: ", "python -m sweeper.report"):
        assert part in help_text, part
    head = help_text.split("== Config ")[0]  # the config below it keeps its own interpolations
    assert "${" not in head and "$APP_CONFIG_GROUPS" not in head and "$CONFIG" not in help_text


def _flatten(node: dict, prefix: str = "hydra.sweeper.") -> dict:
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif key != "_target_":
            out[f"{prefix}{key}"] = value
    return out


def test_help_lists_every_sweeper_setting_with_its_default(help_text):
    defaults = _flatten(yaml.safe_load((ROOT / "conf" / "hydra" / "sweeper" / "lr_sweeper.yaml").read_text()))
    shown = dict(re.findall(r"^(hydra\.sweeper\.[\w.]+)=(\S+) ", help_text, flags=re.M))
    assert "hydra.sweeper.n_trials" in shown
    assert {k: yaml.safe_load(v) for k, v in shown.items()} == defaults


def test_help_lines_fit_a_terminal(help_text):
    head = help_text.split("== Config ")[0]  # the config itself is the user's own text
    assert max(map(len, head.splitlines())) <= 100


def test_shell_completion_installs_as_hydra_documents_it():
    proc = run_cli(["--shell-completion", "install=bash"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]  # was refused: its value read as an override
    assert "hydra_bash_completion" in proc.stdout
