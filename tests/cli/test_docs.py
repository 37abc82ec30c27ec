"""Every python, console and bash block of README.md and docs/*.md runs as a user would run it,
in order per file, in an empty working directory."""

from __future__ import annotations

import pytest
from docs_blocks import DOCS, ROOT, blocks, check_shown, run_file, run_python
from helpers import FRAMEWORKS, require_backends


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_documented_blocks_run(path, tmp_path):
    require_backends(*FRAMEWORKS)  # the docs are written for the full install
    ran, skipped = run_file(path, tmp_path)
    print(f"{path.name}: {ran} blocks run, {len(skipped)} skipped")
    for block in skipped:
        print(f"  skipped {block.where}: {block.skip}")


@pytest.mark.parametrize("marker", ["<!-- skip -->", "<!-- skip: -->", "<!-- skipped: GPU -->"])
def test_a_marker_without_a_reason_or_misspelt_is_refused(marker, tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(f"{marker}\n```python\nprint(1)\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is no marker"):
        blocks(doc)
    doc.write_text("<!-- skip: needs 2 processes -->\n```python\nprint(1)\n```\n")
    assert blocks(doc)[0].skip == "needs 2 processes"


def test_output_the_docs_show_is_checked(tmp_path):
    """A shown line the command does not print fails; e-notation figures agree within 10x."""
    doc = tmp_path / "doc.md"
    doc.write_text("```console\n$ xinit x\nmax rel 2.0e-06 over 9 layers\n...\n```\n")
    block = blocks(doc)[0]
    check_shown(block, "header\nmax rel 1.1e-06 over 9 layers\n")
    for printed in ("max rel 3.0e-05 over 9 layers", "max rel 2.0e-06 over 8 layers"):
        with pytest.raises(AssertionError, match="did not print"):
            check_shown(block, printed)


def test_a_raises_block_must_raise_the_error_it_shows(tmp_path):
    doc = tmp_path / "doc.md"
    shown = "int('x')\n# ValueError: invalid literal for int() with base 10: 'x'\n"
    doc.write_text(f"<!-- raises -->\n```python\n{shown}```\n")
    run_python(blocks(doc)[0], {})
    for code in (shown.replace(": 'x'", ": 'y'"), shown.replace("int('x')", "int('1')")):
        doc.write_text(f"<!-- raises -->\n```python\n{code}```\n")
        with pytest.raises(AssertionError, match="raised"):
            run_python(blocks(doc)[0], {})
