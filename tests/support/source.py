"""What a Python source imports, for the tests that check import rules."""

from __future__ import annotations

import ast


def imported_modules(source: str) -> list[str]:
    """The absolute module names ``source`` imports (``import a.b``, ``from a.b import c``), in order."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names
