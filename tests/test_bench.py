"""`make bench` smoke test: the quick mode runs end to end and reports all six figures."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_quick_bench_reports_six_figures_with_targets(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert [f["figure"].split(".")[0] for f in figures] == ["1", "2", "3", "4", "5", "6"]
    assert all(f["target"] and f["value"] for f in figures)
    table = (tmp_path / "bench.md").read_text()
    assert table.count("\n| ") == 7 and table in proc.stdout  # header + six rows, printed too
