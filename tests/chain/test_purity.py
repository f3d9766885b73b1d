"""chain/ is consensus code: it imports only the standard library and the pinned codec, signature and integer
array libraries, and contains no floats (literals, ``float(``, true division, float dtypes), no wall clock and no
unseeded randomness. The checks are tested on samples that break them, so they cannot pass vacuously."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

from tests.support.source import imported_modules

CHAIN = Path(__file__).resolve().parents[2] / "src" / "gridmint" / "chain"
ALLOWED_THIRD_PARTY = {"msgpack", "nacl", "numpy"}
FORBIDDEN_STDLIB = {"time", "datetime", "random", "math", "cmath", "decimal", "fractions", "statistics", "os",
                    "socket", "threading", "asyncio", "subprocess", "secrets", "uuid"}
FLOAT_NAMES = {"float", "float16", "float32", "float64", "float128", "longdouble", "double", "single", "half",
               "complex", "complex64", "complex128", "floating", "inexact"}


def import_problems(source: str) -> list[str]:
    problems = []
    for name in imported_modules(source):
        top = name.split(".")[0]
        if name.startswith("gridmint."):
            if not name.startswith("gridmint.chain"):
                problems.append(f"imports {name}: chain/ must not import other gridmint packages")
        elif top in FORBIDDEN_STDLIB:
            problems.append(f"imports {name}: wall clock, randomness, floats or I/O have no place in chain/")
        elif top not in sys.stdlib_module_names and top not in ALLOWED_THIRD_PARTY and top != "__future__":
            problems.append(f"imports {name}: not the standard library nor {sorted(ALLOWED_THIRD_PARTY)}")
    return problems


def float_problems(source: str) -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            problems.append(f"line {line}: float literal {node.value!r}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip("<>=|") in {
                "f2", "f4", "f8", "f16", "float16", "float32", "float64", "d", "e"}:
            problems.append(f"line {line}: float dtype string {node.value!r}")
        elif isinstance(node, ast.Name) and node.id in FLOAT_NAMES:
            problems.append(f"line {line}: uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in FLOAT_NAMES:
            problems.append(f"line {line}: uses .{node.attr}")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            problems.append(f"line {line}: true division makes floats; use // with a documented scale")
        elif isinstance(node, ast.arg) and isinstance(node.annotation, ast.Name) and node.annotation.id == "float":
            problems.append(f"line {line}: float parameter")
    return problems


def chain_sources() -> list[Path]:
    sources = sorted(CHAIN.glob("*.py"))
    assert len(sources) >= 10
    return sources


@pytest.mark.parametrize("path", chain_sources(), ids=lambda p: p.name)
def test_chain_imports_only_what_consensus_code_may(path: Path) -> None:
    assert import_problems(path.read_text()) == []


@pytest.mark.parametrize("path", chain_sources(), ids=lambda p: p.name)
def test_chain_has_no_floats(path: Path) -> None:
    assert float_problems(path.read_text()) == []


INTEGER_DTYPE = re.compile(r"^(np\.u?int(8|16|32|64)|LANE_DTYPE|'[<>=]?[ui][1248]')$")


def test_numpy_is_used_with_integer_dtypes_only() -> None:
    seen = 0
    for path in chain_sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "dtype":
                shown = ast.unparse(node.value)
                assert INTEGER_DTYPE.match(shown), f"{path.name}: dtype={shown} is not an integer type"
                seen += 1
    assert seen >= 5
    assert not INTEGER_DTYPE.match("np.float64") and not INTEGER_DTYPE.match("'<f8'")


@pytest.mark.parametrize("sample", [
    "x = 1.5", "y = float(3)", "z = a / b", "a /= 2", "import numpy as np\nq = np.float64(1)",
    "q = arr.astype('f8')", "def f(x: float) -> int: ...",
])
def test_the_float_lint_catches(sample: str) -> None:
    assert float_problems(sample)


@pytest.mark.parametrize("sample", [
    "import time", "from datetime import datetime", "import random", "import requests",
    "from gridmint.node import devnode", "import math",
])
def test_the_import_check_catches(sample: str) -> None:
    assert import_problems(sample)


def test_allowed_imports_pass() -> None:
    assert import_problems("import hashlib\nimport msgpack\nimport numpy as np\nfrom gridmint.chain import codec") == []
