"""Assert-style tests (problem kind `script`): find the assert statements of a test program and rewrite them
so that each one reports its own result instead of raising.

    sites = assert_sites(test_code)        # one Site per `assert` statement, in source order
    code = instrument(test_code)           # what the sandbox child runs

Site k of the instrumented code becomes (evaluated once per execution, so asserts inside loops and inside
HumanEval's `check(candidate)` work):

    try:
        __sdpo.begin(k); __sdpo_v = (LEFT, RIGHT)      # `assert LEFT <op> RIGHT`  (one comparison operator)
    except Exception as __sdpo_e:
        __sdpo.raised(k, __sdpo_e)                      # the assertion's expression raised: runtime_error
    else:
        __sdpo.compare(k, "<op>", *__sdpo_v)            # the child compares (plain values only) and records

`assert not X` / `assert X` / anything else become `__sdpo.truth(k, negate, X)`. The helpers live in the
trusted tester process (sdpo_ttt/sandbox/box/tester.py), which runs the whole test program; the attempt's
function there is a proxy whose return values are rebuilt from plain builtin types, so no object of the
attempt (an always-true `__eq__`, a lying `__bool__`) ever reaches a comparison.
Failures do not stop the program ("soft" asserts): every assertion gets its own result, the score is the
fraction of assertions that held, and the attempt passes iff all held and the program ran to the end.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from functools import lru_cache

_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in",
        ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}


# CPython 3.11 can raise "SystemError: AST constructor recursion depth mismatch" when threads parse at once
# (sandbox backends build requests from worker threads): parse one at a time.
_AST_LOCK = threading.Lock()


@dataclass(frozen=True)
class Site:
    index: int
    line: int  # 1-based line in the test code
    source: str  # the assert statement's source text


def _asserts(tree: ast.AST) -> list[ast.Assert]:
    return sorted((n for n in ast.walk(tree) if isinstance(n, ast.Assert)), key=lambda n: (n.lineno, n.col_offset))


@lru_cache(maxsize=256)
def assert_sites(test_code: str) -> tuple[Site, ...]:
    """Every assert statement of `test_code`, in source order. Raises SyntaxError."""
    with _AST_LOCK:
        return _assert_sites(test_code)


def _assert_sites(test_code: str) -> tuple[Site, ...]:
    tree = ast.parse(test_code)
    out = []
    for i, node in enumerate(_asserts(tree)):
        src = ast.get_source_segment(test_code, node) or ast.unparse(node)
        out.append(Site(i, node.lineno, src))
    return tuple(out)


def _stmt(src: str) -> list[ast.stmt]:
    return ast.parse(src).body


class _Rewrite(ast.NodeTransformer):
    def __init__(self, numbering: dict[int, int]) -> None:
        self.numbering = numbering

    def visit_Assert(self, node: ast.Assert) -> list[ast.stmt]:
        k = self.numbering[id(node)]
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _OPS:
            values = ast.Tuple([test.left, test.comparators[0]], ast.Load())
            check = f"__sdpo.compare({k}, {_OPS[type(test.ops[0])]!r}, *__sdpo_v)"
        else:
            negate = isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
            operand = test.operand if negate else test
            values = ast.Tuple([operand], ast.Load())
            check = f"__sdpo.truth({k}, {negate}, *__sdpo_v)"
        block = _stmt(
            f"try:\n    __sdpo.begin({k})\n    __sdpo_v = None\n"
            f"except Exception as __sdpo_e:\n    __sdpo.raised({k}, __sdpo_e)\nelse:\n    {check}\n"
        )[0]
        assign = block.body[1]
        assert isinstance(assign, ast.Assign)
        assign.value = values
        for n in ast.walk(block):
            ast.copy_location(n, node)
        return [block]


@lru_cache(maxsize=256)
def instrument(test_code: str) -> str:
    """The test program with every assert rewritten to report its site's result (see the module doc)."""
    with _AST_LOCK:
        return _instrument(test_code)


def _instrument(test_code: str) -> str:
    tree = ast.parse(test_code)
    numbering = {id(n): i for i, n in enumerate(_asserts(tree))}
    tree = _Rewrite(numbering).visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n"
