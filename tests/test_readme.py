"""The README's add-a-method example is the real, tested methods/pca.py, and stays short."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _example_block() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- example-method: (\S+) -->\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its example-method block"
    return match.group(1), match.group(2)


def test_readme_example_is_the_registered_file():
    path, code = _example_block()
    assert code == (ROOT / path).read_text()


def test_readme_example_is_about_40_lines():
    _, code = _example_block()
    assert len(code.splitlines()) <= 45


def test_readme_example_is_registered():
    import methods

    assert "pca" in methods.discover()
