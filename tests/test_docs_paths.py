"""The documents name what exists (issue 19, items 9 and "every RDL_* variable documented").

* every RDL_* environment variable the code reads (core/, ui/, pages/, app.py, bench/, tests/) is in README.md;
* every code reference in data/README.md and docs/benchmarks.md is real: a path like core/training/config.py is a
  file of the repository, and a dotted name like core.training.config.recipe_for is a module (a .py file or a
  package) followed by at most one name that module defines at its top level (read with ast, nothing imported).
  A path written as git's <commit>:<path> names an old file on purpose and is not checked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("core", "ui", "pages", "bench", "tests")
DOCS = ("data/README.md", "docs/benchmarks.md")
PATH_REFERENCE = re.compile(r"(?<![:/\w])(?:core|ui|bench|scripts|pages|tests)/[A-Za-z0-9_/]+\.py\b")
DOTTED_REFERENCE = re.compile(r"\b(?:core|ui|bench)(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _code_files() -> list[Path]:
    return [ROOT / "app.py", *(path for folder in CODE_FOLDERS for path in (ROOT / folder).rglob("*.py"))]


def _environment_variables_read() -> set[str]:
    names = set()
    for path in _code_files():
        if path.name == "test_docs_paths.py":
            continue
        names.update(re.findall(r"\bRDL_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    return names


def test_every_rdl_variable_is_in_the_readme():
    readme = ROOT.joinpath("README.md").read_text()
    found = _environment_variables_read()
    assert {"RDL_HOME", "RDL_RUNS_DIR", "RDL_CHECKPOINT_DIR", "RDL_DATA_DIR"} <= found  # the reader itself works
    missing = sorted(name for name in found if f"`{name}`" not in readme)
    assert not missing, f"RDL_* variables read by the code but not in README.md: {missing}"


def _top_level_names(module_file: Path) -> set[str]:
    names = set()
    for node in ast.parse(module_file.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _dotted_problem(reference: str) -> str | None:
    """None when `reference` is a module, or a module and one name it defines; else why not."""
    parts = reference.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        module_file = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if not module_file.is_file():
            continue
        rest = parts[cut:]
        if not rest:
            return None
        if len(rest) == 1 and rest[0] in _top_level_names(module_file):
            return None
        return f"{reference}: {module_file.relative_to(ROOT)} defines no {'.'.join(rest)}"
    return f"{reference}: no such module"


@pytest.mark.parametrize("document", DOCS)
def test_code_references_in_documents_exist(document):
    text = ROOT.joinpath(document).read_text()
    problems = [f"{path}: no such file" for path in sorted(set(PATH_REFERENCE.findall(text))) if not (ROOT / path).is_file()]
    problems += [problem for reference in sorted(set(DOTTED_REFERENCE.findall(text)))
                 if (problem := _dotted_problem(reference)) is not None]
    assert not problems, f"{document} names code that does not exist:\n" + "\n".join(problems)
