"""Generated bad input: the only outcomes are success or a one-line ConfigError, never another
exception. Config keys go through sweeper.core.contract.validate; data files through read_rows."""
import copy
import csv
import io
import json
import math
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
from conftest import compose, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeper.core.errors import ConfigError
from sweeper.core.contract import validate
from trainers.records import FORMATS, read_rows

def fast(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
NESTED = ["lora.r", "lora.alpha", "lora.dropout", "scheduler.warmup", "divergence.factor", "data.format",
          "data.eval_fraction", "data.max_eval_examples", "lr_find.steps", "model.name_or_path", "data.path"]

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-3, max_value=70), st.integers(min_value=-10**400, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=-2, max_value=2),
    st.text(max_size=12), st.sampled_from(["auto", "", "???", "-1", "1e400", "cosine", "eval_loss", "\n", "é✓\u2028"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=6), scalars, max_size=3))


@lru_cache(maxsize=1)
def base() -> dict:
    return compose([])


def assert_one_line_error(call) -> None:
    """Runs call(); a ConfigError must be one line that names a field; anything else fails the test."""
    try:
        call()
    except ConfigError as err:
        text = str(err)
        assert text and "\n" not in text and "\r" not in text, text
        assert err.field and text.startswith(f"{err.field}: "), text


def set_key(cfg: dict, dotted: str, value) -> None:
    node = cfg
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[leaf] = value


@fast(300)
@given(st.lists(st.tuples(st.sampled_from(sorted(base()) + NESTED), values), min_size=1, max_size=3))
def test_any_config_value_is_accepted_or_one_line_error(changes):
    cfg = copy.deepcopy(base())
    for key, value in changes:
        set_key(cfg, key, value)
    assert_one_line_error(lambda: validate(cfg))


# Data files: rows of the right shape with wrong-typed values, and plain garbage.

FIELDS = ["instruction", "input", "output", "prompt", "completion", "text", "messages", "role", "content"]
cells = st.one_of(scalars, st.lists(scalars, max_size=2), st.text(alphabet=st.characters(), max_size=30))
messages = st.lists(st.one_of(
    st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool", "", "USER"]),
                           "content": cells}),
    cells), max_size=4)
rows = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), cells, max_size=4),
    st.fixed_dictionaries({"messages": messages}),
    st.fixed_dictionaries({"instruction": cells, "output": cells}, optional={"input": cells}),
    cells,
)
layout = st.fixed_dictionaries({"bom": st.booleans(), "newline": st.sampled_from(["\n", "\r\n"])})
formats = st.sampled_from(["auto", *FORMATS, "bogus"])


@lru_cache(maxsize=1)
def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="lr-sweeper-property-"))


def write(name: str, text: str, bom: bool) -> Path:
    path = scratch() / name
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode("utf-8", "surrogatepass"))
    return path


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)  # NaN, Infinity and huge ints as Python writes them


@fast(150)
@given(st.lists(st.one_of(rows.map(dumps), st.text(max_size=20)), min_size=0, max_size=5), layout, formats)
def test_any_jsonl_file_reads_or_is_one_line_error(lines, how, fmt):
    path = write("d.jsonl", how["newline"].join(lines) + how["newline"], how["bom"])
    assert_one_line_error(lambda: read_rows(path, fmt))


@fast(100)
@given(st.one_of(st.lists(rows, max_size=4).map(dumps), rows.map(dumps), st.text(max_size=20)), layout, formats)
def test_any_json_file_reads_or_is_one_line_error(text, how, fmt):
    path = write("d.json", text.replace("\n", how["newline"]), how["bom"])
    assert_one_line_error(lambda: read_rows(path, fmt))


@fast(100)
@given(st.lists(st.sampled_from(FIELDS + ["", "x"]), min_size=1, max_size=4),
       st.lists(st.lists(st.text(max_size=15), max_size=5), max_size=4), layout, st.booleans(), formats)
def test_any_csv_file_reads_or_is_one_line_error(header, body, how, raw, fmt):
    if raw:  # unquoted: stray commas, quotes and line breaks as a hand-written file has them
        text = how["newline"].join(",".join(r) for r in [header, *body]) + how["newline"]
    else:
        out = io.StringIO()
        csv.writer(out, lineterminator=how["newline"]).writerows([header, *body])
        text = out.getvalue()
    path = write("d.csv", text, how["bom"])
    assert_one_line_error(lambda: read_rows(path, fmt))


def test_numbers_a_json_writer_emits_are_read_as_errors_not_crashes(tmp_path):
    path = tmp_path / "n.jsonl"
    path.write_text('{"prompt": NaN, "completion": "x"}\n{"prompt": 1e400, "completion": "x"}\n')
    with pytest.raises(ConfigError, match=r'n\.jsonl:1: field "prompt" is a number \(nan\)'):
        read_rows(path)
    assert math.isinf(json.loads("1e400"))


# The CLI: a few bad values end as one "error:" line and exit status 2, no traceback.

BAD_KEYS = ["max_steps", "batch_size", "seed", "lora.r", "data.eval_fraction", "max_seq_length", "eval_interval"]
BAD_VALUES = st.one_of(st.integers(max_value=-2, min_value=-10**6).map(str),
                       st.sampled_from(["true", "1.5", "abc", "[1,2]", "1e400"]))


@pytest.mark.slow
@settings(deadline=None, database=None, max_examples=4, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(BAD_KEYS), BAD_VALUES)
def test_cli_bad_values_exit_2_with_one_error_line(key, value):
    proc = run_cli([f"{key}={value}", "hydra.run.dir=" + str(scratch() / "cli")], timeout=120)
    assert proc.returncode == 2, (key, value, proc.stderr[-1000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-1000:]
    assert "Traceback" not in proc.stderr + proc.stdout
