"""Reading dataset files into checked rows: JSONL, JSON, CSV and Parquet. No torch here.

What a row must hold is formats.py's; this module finds the rows in a file, with the
line each came from, so an error names file:line.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sweeper.core.errors import ConfigError, one_line
from trainers.formats import FORMATS, brief, check_rows, describe, detect_format

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


def _read_raw(path: Path) -> list[tuple[int, object]]:
    """(line number, row) pairs; line numbers are 1-based as an editor shows them.
    Text files are UTF-8 with or without a byte-order mark, LF or CRLF."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        try:
            data = json.loads(_read_text(path))
        except json.JSONDecodeError as e:
            raise ConfigError("data.path", f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        except RecursionError:
            raise ConfigError("data.path", f"{path}: JSON nested too deeply") from None
        if not isinstance(data, list):
            raise ConfigError("data.path", f"{path}: a .json dataset must be a list of rows")
        return [(i + 1, r) for i, r in enumerate(data)]
    if suffix == ".csv":
        return _read_csv(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    raise ConfigError("data.path", f"{path}: unsupported file type {suffix!r}; accepted: {', '.join(SUFFIXES)}")


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError("data.path", f"{path}:{line}: not UTF-8 text ({e.reason}); "
                          "accepted: UTF-8, with or without a byte-order mark") from None


def _read_jsonl(path: Path) -> list[tuple[int, object]]:
    rows = []
    # split on "\n" only: str.splitlines would also split on U+2028 and friends, which JSON strings may hold
    for lineno, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rows.append((lineno, json.loads(line)))  # a CRLF's "\r" is JSON whitespace
        except json.JSONDecodeError as e:
            raise ConfigError("data.path", f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        except RecursionError:
            raise ConfigError("data.path", f"{path}:{lineno}: JSON nested too deeply") from None
    return rows


def _read_csv(path: Path) -> list[tuple[int, object]]:
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    rows = []
    try:
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:  # DictReader files surplus cells under the key None
                raise ConfigError("data.path", f"{where}: more cells than the header has columns "
                                  f"({', '.join(map(str, reader.fieldnames or []))}); a comma in a value needs quotes")
            # a short row leaves its last cells None: an empty cell, as a spreadsheet shows it
            rows.append((reader.line_num, {k: "" if v is None else v for k, v in row.items()}))
    except csv.Error as e:
        raise ConfigError("data.path", f"{path}:{reader.line_num}: not valid CSV ({e})") from None
    return rows


def _read_parquet(path: Path) -> list[tuple[int, object]]:
    import pandas as pd
    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise ConfigError("data.path", f"{path}: reading Parquet needs pyarrow; "
                          "accepted: pip install 'lr-sweeper[parquet]', or a JSONL, JSON or CSV file") from None
    except (OSError, ValueError) as e:
        raise ConfigError("data.path", f"{path}: not a readable Parquet file ({brief(e)})") from None
    return [(i + 1, _native(r)) for i, r in enumerate(frame.to_dict("records"))]


def _native(value):
    """Parquet list columns come back as numpy arrays: plain lists, so rows check like JSON rows."""
    if isinstance(value, dict):
        return {k: _native(v) for k, v in value.items()}
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_native(v) for v in value]
    return value


def read_rows(path: str | Path, fmt: str = "auto") -> tuple[str, list[dict]]:
    """Reads and checks every row. Returns (format, rows)."""
    try:
        return _read_rows(path, fmt)
    except ConfigError as err:
        raise ConfigError(err.field, one_line(str(err).split(": ", 1)[1])) from None


def _read_rows(path: str | Path, fmt: str) -> tuple[str, list[dict]]:
    if not isinstance(path, (str, Path)) or not str(path):
        raise ConfigError("data.path", f"{describe(path)} is not accepted; accepted: a JSONL, JSON, CSV or Parquet file")
    path = Path(path)
    if not path.is_file():
        raise ConfigError("data.path", f"{path}: no such file")
    raw = _read_raw(path)
    if not raw:
        raise ConfigError("data.path", f"{path}: the file holds no rows")
    if fmt == "auto":
        first_line, first = raw[0]
        fmt = detect_format(first) if isinstance(first, dict) else None
        if fmt is None:
            keys = sorted(map(str, first)) if isinstance(first, dict) else describe(first)
            raise ConfigError("data.format", f"{path}:{first_line}: cannot tell the format from fields {keys}; "
                              f"accepted: {', '.join(FORMATS)}")
    elif not isinstance(fmt, str) or fmt not in FORMATS:
        raise ConfigError("data.format", f"{brief(repr(fmt))} is not a format; accepted: auto, {', '.join(FORMATS)}")
    return fmt, check_rows(fmt, raw, str(path))
