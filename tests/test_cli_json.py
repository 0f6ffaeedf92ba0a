"""The one JSON convention: the CLI's --json line and the JSON files share io.atomic's default
(numpy numbers as numbers, non-finite floats refused, arrays as lists)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gpuskew.cli.common import emit_json
from gpuskew.io import dumps_json, write_json


def test_emit_json_writes_numpy_numbers_as_numbers(capsys):
    emit_json({"n": np.int64(3), "x": np.float32(0.5), "ok": np.bool_(True), "p": Path("a/b"), "v": np.arange(3)})
    line = capsys.readouterr().out
    assert line == '{"n":3,"ok":true,"p":"a/b","v":[0,1,2],"x":0.5}\n'
    assert json.loads(line)["n"] == 3


@pytest.mark.parametrize("bad", [np.float32("nan"), np.float64("inf"), float("nan")])
def test_emit_json_refuses_non_finite_numpy_floats(bad, capsys):
    with pytest.raises(ValueError):
        emit_json({"x": bad})
    assert capsys.readouterr().out == ""


def test_emit_json_refuses_unknown_objects_instead_of_printing_their_str():
    with pytest.raises(TypeError):
        emit_json({"x": object()})


def test_json_files_take_numpy_arrays_of_any_size(tmp_path):
    obj = {"a": np.array([1.5, 2.0]), "m": np.arange(4).reshape(2, 2), "s": np.array(7), "e": np.zeros(0)}
    assert json.loads(dumps_json(obj)) == {"a": [1.5, 2.0], "m": [[0, 1], [2, 3]], "s": 7, "e": []}
    write_json(obj, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": [1.5, 2.0], "m": [[0, 1], [2, 3]], "s": 7, "e": []}
    with pytest.raises(ValueError):
        dumps_json({"a": np.array([1.0, np.nan])})
    assert dumps_json({"k": "é"}, compact=True) == '{"k":"\\u00e9"}'


def test_prom_textfile_without_prometheus_client_exits_2_before_writing(tmp_path, monkeypatch):
    """--prom-textfile needs the monitor extra: refused while the options are read (exit 2, the extra
    named), not after the outputs and the history are written."""
    import sys

    from click.testing import CliRunner

    from gpuskew.cli import main

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # `import prometheus_client` fails
    res = CliRunner().invoke(main, ["run", "--demo", "--demo-size", "50", "--out", str(tmp_path / "o"),
                                    "--history", str(tmp_path / "h"), "--prom-textfile", str(tmp_path / "m.prom"),
                                    "--json"])
    assert res.exit_code == 2 and "gpuskew[monitor]" in res.stderr and '"exit_code":2' in res.stdout
    assert not (tmp_path / "o").exists() and not (tmp_path / "h").exists() and not (tmp_path / "m.prom").exists()
