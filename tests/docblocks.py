"""The code blocks of docs/library.md marked `<!-- tested: NAME -->`, which the tests run exactly as written.

README.md may show the same blocks under the same markers; they must then be identical to docs/library.md's,
so the documentation cannot drift from what the tests run.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY_DOC = REPO / "docs" / "library.md"
README = REPO / "README.md"
_BLOCK = re.compile(r"<!--\s*tested:\s*([\w-]+)\s*-->\s*\n```(\w+)\n(.*?)\n```", re.S)


def tested_blocks(path: Path) -> dict[str, tuple[str, str]]:
    """name → (language, code) of every marked fenced block in `path`."""
    return {m.group(1): (m.group(2), m.group(3)) for m in _BLOCK.finditer(path.read_text(encoding="utf-8"))}


def doc_block(name: str) -> str:
    """The code of block `name` in docs/library.md, checked against README.md's copy when it has one."""
    blocks = tested_blocks(LIBRARY_DOC)
    assert name in blocks, f"docs/library.md has no block marked <!-- tested: {name} -->"
    if README.is_file():
        readme = tested_blocks(README)
        if name in readme:
            assert readme[name] == blocks[name], (
                f"README.md's block <!-- tested: {name} --> differs from docs/library.md's; copy it over")
    return blocks[name][1]
