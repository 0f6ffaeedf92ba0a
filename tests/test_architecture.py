"""The house's import direction (docs/architecture.md), checked on every import statement, including
the lazy ones inside functions:

    kernels <- errors, timeutil <- schema, io <- core <- policy <- adherence <- session
            <- jobs (history, reporting, synthetic, scenarios, backtest, monitor, distributed) <- cli

A module may import its own layer and the layers below; ``kernels/`` imports nothing from gpuskew;
nothing imports ``gpuskew.cli`` (but the cli itself and ``python -m gpuskew``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: layer of each top-level part of the package (higher may import lower)
LAYERS = {
    "kernels": 0,
    "errors": 1, "timeutil": 1,
    "schema": 2, "io": 2,
    "core": 3,
    "policy": 4,
    "adherence": 5,
    "session": 6,
    "history": 7, "reporting": 7, "synthetic": 7, "scenarios": 7, "backtest": 7, "monitor": 7,
    "distributed": 7,
    "cli": 8, "__main__": 8,
}


def _modules():
    for path in sorted((ROOT / "gpuskew").rglob("*.py")):
        rel = path.relative_to(ROOT / "gpuskew").with_suffix("")
        yield path, ("gpuskew",) + rel.parts
    for path in sorted((ROOT / "kernels").rglob("*.py")):
        yield path, ("gpuskew", "kernels") + path.relative_to(ROOT / "kernels").with_suffix("").parts


def _part(module: tuple[str, ...]) -> str | None:
    """The top-level part of a gpuskew module name (None for the package itself)."""
    if len(module) < 2 or module[0] != "gpuskew":
        return None
    return module[1]


def _imports(path: Path, module: tuple[str, ...]):
    tree = ast.parse(path.read_text(), str(path))
    package = module[:-1] if path.name != "__init__.py" else module[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, tuple(alias.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = base + tuple((node.module or "").split(".")) if node.module else base
            else:
                target = tuple((node.module or "").split("."))
            if target == ("gpuskew",):  # from gpuskew import x: x is a submodule or a name
                for alias in node.names:
                    yield node.lineno, ("gpuskew", alias.name)
            else:
                yield node.lineno, target


def _violations():
    found = []
    for path, module in _modules():
        me = _part(module)
        if me is None or me not in LAYERS:
            continue
        for line, target in _imports(path, module):
            them = _part(target)
            if them is None or them not in LAYERS or them == me:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {'.'.join(target)}"
            if me == "kernels":
                found.append(f"{where}: kernels/ imports nothing from gpuskew")
            elif them == "cli" and me not in ("cli", "__main__"):
                found.append(f"{where}: nothing imports the cli")
            elif LAYERS[them] > LAYERS[me]:
                found.append(f"{where}: {me} (layer {LAYERS[me]}) may not import {them} (layer {LAYERS[them]})")
    return found


def test_every_part_has_a_layer():
    parts = {p.name if p.is_dir() else p.stem for p in (ROOT / "gpuskew").iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    missing = sorted(parts - set(LAYERS))
    assert not missing, f"add these to LAYERS (and docs/architecture.md): {missing}"


def test_imports_point_one_way():
    assert _violations() == []


def test_the_check_catches_a_wrong_import(tmp_path):
    """A test that cannot fail is a defect: a core module importing adherence is reported."""
    fake = tmp_path / "gpuskew" / "core"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("def f():\n    from gpuskew.adherence import check\n")
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "bad.py").write_text("import gpuskew.schema\n")
    globals_root = globals()["ROOT"]
    globals()["ROOT"] = tmp_path
    try:
        found = _violations()
    finally:
        globals()["ROOT"] = globals_root
    assert any("core (layer 3) may not import adherence" in v for v in found)
    assert any("kernels/ imports nothing from gpuskew" in v for v in found)


@pytest.mark.parametrize("part", ["core", "policy", "adherence", "session"])
def test_lower_layers_import_no_job_and_no_cli(part):
    assert not [v for v in _violations() if v.startswith(f"gpuskew/{part}")]
