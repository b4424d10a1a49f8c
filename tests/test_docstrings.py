"""Every docstring of the project is well-formed reStructuredText (numpydoc sections included).

Sphinx's cross-reference roles (``:func:``, ``:class:``, ...) are registered as plain literals,
so what is checked is the markup itself: lists, definition lists, literals, indentation.
"""

from __future__ import annotations

import ast
import io
from pathlib import Path

import docutils.core
import pytest
from docutils import nodes
from docutils.parsers.rst import roles

ROOT = Path(__file__).resolve().parents[1]
for _role in ("mod", "func", "class", "meth", "attr", "data", "obj", "exc"):
    roles.register_generic_role(_role, nodes.literal)


def _problems(text: str) -> str:
    stream = io.StringIO()
    docutils.core.publish_doctree(text, settings_overrides={"warning_stream": stream, "report_level": 2, "halt_level": 5})
    return stream.getvalue().strip()


def _docstrings(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))]:
        text = ast.get_docstring(node)
        if text:
            yield getattr(node, "name", "<module>"), text


def test_the_check_catches_broken_markup():
    broken = '''Two geometries:

``"a"``
    One.
The mixture follows::

    x = 1
'''
    assert "Definition list ends without a blank line" in _problems(broken)
    assert _problems("A ``literal`` and :func:`a.b`.") == ""


@pytest.mark.parametrize("package", ["benchmark", "methods", "datasets"])
def test_docstrings_are_well_formed(package):
    found = [
        f"{path.relative_to(ROOT)}:{name}: {problem}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name, text in _docstrings(path)
        if (problem := _problems(text))
    ]
    assert found == []
