"""docs/issue-audit.md names only tests that exist, and every numbered item of issues 12 and 13."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIT = ROOT / "docs" / "issue-audit.md"
REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _rows() -> list[str]:
    return [line for line in AUDIT.read_text().splitlines() if line.startswith("| ") and "---" not in line]


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test_")}


def test_every_test_the_audit_names_exists():
    refs = [m.groups() for line in _rows() for m in REF.finditer(line)]
    assert len(refs) > 60, "the table lost its test names"
    missing = []
    for file, name in refs:
        path = ROOT / file
        if not path.is_file() or name not in _test_functions(path):
            missing.append(f"{file}::{name}")
    assert not missing, missing


def test_every_numbered_item_has_a_row_with_a_test():
    items = {}
    for line in _rows():
        cell = line.split("|")[1].strip()
        items.setdefault(cell, []).extend(REF.findall(line))
    expected = [f"12.{n}" for n in range(1, 10)] + [f"13.{n}" for n in range(1, 13)]
    assert [i for i in expected if not items.get(i)] == []


def test_the_audit_is_linked_from_the_readme():
    assert "docs/issue-audit.md" in (ROOT / "README.md").read_text()


def test_a_wrong_name_would_be_caught(tmp_path):
    fake = tmp_path / "test_x.py"
    fake.write_text("def test_here():\n    pass\n")
    assert _test_functions(fake) == {"test_here"}
    assert REF.findall("`tests/a/test_x.py::test_gone`") == [("tests/a/test_x.py", "test_gone")]
