"""Every python, console and bash block of README.md and docs/*.md runs as a user would run it,
in order per file, in an empty working directory (issue 27)."""

from __future__ import annotations

import pytest
from docs_blocks import DOCS, ROOT, blocks, run_file


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_documented_blocks_run(path, tmp_path):
    ran, skipped = run_file(path, tmp_path)
    print(f"{path.name}: {ran} blocks run, {len(skipped)} skipped")
    for block in skipped:
        print(f"  skipped {block.where}: {block.skip}")


def test_every_skip_marker_gives_a_reason():
    for path in DOCS:
        for block in blocks(path):
            assert block.skip is None or len(block.skip) > 3, block.where
