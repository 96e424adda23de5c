"""The package's shape, beside the import contracts `make lint` checks (pyproject.toml,
`[tool.importlinter]`): no module reaches for another module's `_private` names, so a module's
underscore means what it says and its insides can change without a search."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "sms_stats"


def _reaches(path: Path) -> list[str]:
    """`from sms_stats.x import _y` and `x._y` where `x` names a module of ours."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    ours: set[str] = set()  # local names bound to modules of ours
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sms_stats"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if (SRC / Path(*target.split("."))).exists() or (
                    SRC / Path(*target.split("."))
                ).with_suffix(".py").exists():
                    ours.add(alias.asname or alias.name)
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} imports {target}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sms_stats") and alias.asname:
                    ours.add(alias.asname)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ours
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{path.name}:{node.lineno} reads {node.value.id}.{node.attr}")
    return found


def test_given_every_module_when_read_then_none_reaches_for_another_modules_private_names() -> None:
    reaching = [r for p in sorted(PACKAGE.rglob("*.py")) for r in _reaches(p)]
    assert reaching == []


def test_given_a_module_that_reaches_when_read_then_it_is_named(tmp_path: Path) -> None:
    """The check itself can fail: both ways of reaching are seen."""
    sample = tmp_path / "_reach_sample.py"
    sample.write_text(
        "from sms_stats.core.log import _quiet\nfrom sms_stats.core import redact\nredact._x\n",
        encoding="utf-8",
    )
    found = _reaches(sample)
    assert found == [
        "_reach_sample.py:1 imports sms_stats.core.log._quiet",
        "_reach_sample.py:3 reads redact._x",
    ]


def test_given_the_stages_when_listed_then_only_the_wiring_stands_beside_them() -> None:
    """README's picture: a folder per stage, and on top only what wires them."""
    flat = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert flat == ["__init__.py", "cli.py", "handler.py"]
    stages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert stages == [
        "alerts", "collect", "core", "deliver", "emulator", "events", "money", "run", "store",
        "web",
    ]  # fmt: skip
