"""Where an attempt ends (issue 26): `extract.code_closed` / `code_end` against the extractor and a line-by-line
oracle on every prefix of many answers; `CodeStop` on real tokens; `code_cut`; vLLM's fence rounds.

The rule under test: sampling stops on the first prefix of the answer that holds a closed candidate block, and
the extractor, run on that prefix, judges exactly the FIRST candidate block of the whole answer.
"""

from __future__ import annotations

import ast
import functools
import re

import pytest

from sdpo_ttt.policy.extract import code_closed, code_end, extract_code
from sdpo_ttt.policy.stop import CodeStop, code_cut
from sdpo_ttt.policy.vllm_backend import Round, sample_until_code

PY = {"python", "py", "python3", "py3", "python 3"}


def _oracle_first_block(text: str) -> tuple[str, int] | None:
    """(body, offset just past its closing fence line's fence) of the first closed candidate block, by reading lines.

    An independent reading of extract.py's rules: a fence is 0-3 spaces + >= 3 backticks or tildes; it closes on
    a line of the same character, at least as long, nothing else but blanks; candidates are blocks tagged
    python/py/... (also when the tag sits alone on the first line of an untagged block) or untagged blocks that
    parse as Python and do something."""
    lines = text.split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    i = 0
    while i < len(lines):
        m = re.fullmatch(r" {0,3}(`{3,}|~{3,})[ \t]*([^`\n]*)", lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip().lower()
        j = i + 1
        while j < len(lines):
            c = re.fullmatch(r" {0,3}(" + re.escape(fence[0]) + r"+)[ \t]*", lines[j])
            if c and len(c.group(1)) >= len(fence):
                break
            j += 1
        if j == len(lines):
            return None  # never closes
        body_lines = lines[i + 1: j]
        tag = info.split()[0].lstrip("{.").rstrip("}") if info else None
        if tag is None and body_lines and body_lines[0].strip().lower() in PY:
            tag, body_lines = "python", body_lines[1:]
        body = "\n".join(body_lines).strip("\n")
        end = offsets[j] + len(lines[j].rstrip(" \t"))
        if body.strip() and (tag in PY if tag is not None else _does_something(body)):
            return body, end
        i = j + 1
    return None


def _does_something(code: str) -> bool:
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    return any(not isinstance(n, ast.Expr) or isinstance(n.value, ast.Call) for n in tree.body)


ANSWERS = [
    "```python\nprint(1)\n```\nThis prints one.",
    "Here is my solution:\n\n```py\nn = int(input())\nprint(n * 2)\n```\n\nExplanation: doubles n.\n",
    "```\nimport sys\nprint(sum(map(int, sys.stdin.read().split())))\n```\nDone.",
    "Example input:\n```\n3 4\n```\nOutput:\n```\n7\n```\nCode:\n```python\na, b = map(int, input().split())\nprint(a + b)\n```\nUsage: run it.",
    "```text\nnot code\n```\n```python3\nx = 1\nprint(x)\n```\n",
    "```\npython\ndef f(a):\n    return a + 1\n```\nmore prose",
    "~~~python\nprint('tilde')\n~~~\nafter",
    "````python\ns = '''\n```\n'''\nprint(s)\n````\nafter the four-backtick block",
    "Use ```python inline``` mid-line, then:\n```python\nprint(4)\n```\n",
    "```bash\npython main.py\n```\n```json\n{\"a\": 1}\n```\n",
    "```python\nprint('never closed')\n",
    "no code at all, just prose ``` and more",
    "```python\n\n```\n```python\nprint('second')\n```\ntrailing",
    "    ```python\n    indented four: not a fence\n    ```\n```python\nprint(5)\n```",
    "```{.python}\nprint(6)\n```\n```python\nprint('a longer second block, not judged after the stop')\n```",
    "```python\nprint(7)\n   ```   \nthree spaces before the close",
    "```python\nprint(8)\n``\nstill open\n~~~\nstill open\n```",
    "```\nx\n```\n```\nprint('untagged code after a bare name')\n```\nend",
]


@pytest.mark.parametrize("text", ANSWERS)
def test_the_answer_stops_at_the_first_block_the_extractor_judges(text: str) -> None:
    expected = _oracle_first_block(text)
    stops = [k for k in range(len(text) + 1) if code_closed(text[:k])]
    if expected is None:
        assert stops == [] and code_end(text) is None
        return
    body, end = expected
    assert stops and stops[0] == end  # the first prefix that is closed ends on the closing fence itself
    assert text[end: code_end(text)].strip(" \t") == ""  # code_end also takes the fence line's trailing blanks
    assert extract_code(text[:end]) == body.rstrip() + "\n"  # what is judged once the answer stops there
    assert extract_code(text[:code_end(text)]) == extract_code(text[: stops[0]])


def test_a_closed_block_is_closed_whatever_follows_and_an_open_one_is_not() -> None:
    assert code_closed("```python\nprint(1)\n```")
    assert code_closed("```python\nprint(1)\n```\n\nThis program")
    assert not code_closed("```python\nprint(1)\n``")
    assert not code_closed("```python\nprint(1)\n")
    assert not code_closed("```\n3 4\n```\n")  # sample I/O is not the code


def test_a_fence_ends_the_answer_as_soon_as_its_characters_arrive() -> None:
    """The stop does not wait for the fence line's newline (one token fewer): a model that would have gone on to
    write "```python" inside its open block (malformed markdown) is stopped at the "```", and judged on the code
    above it, as the extractor reads the text it stopped on."""
    stopped = "```python\nprint(2)\n```"
    assert code_closed(stopped) and extract_code(stopped) == "print(2)\n"
    assert not code_closed("```python\nprint(2)\n```python\nprint(3)\n")


def test_code_cut_blames_the_limit_only_when_the_code_was_cut() -> None:
    assert code_cut("```python\nfor i in range(", "length")
    assert code_cut("Let me think about this problem step by", "length")
    assert not code_cut("```python\nprint(1)\n```\nThe program reads", "length")  # only the prose was cut
    assert not code_cut("```python\nprint(1\n", "eos")


@functools.cache
def _qwen_tokenizer():  # noqa: ANN202
    from sdpo_ttt.policy.catalog import model_dir

    d = model_dir("qwen2.5-coder-0.5b")
    if not (d / "tokenizer.json").is_file():
        pytest.skip(f"no tokenizer at {d}: run `bash scripts/setup.sh`")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(d)


@pytest.mark.parametrize("text", [a for a in ANSWERS if code_end(a) is not None])
def test_code_stop_ends_on_the_token_that_closes_the_block(text: str) -> None:
    tok = _qwen_tokenizer()
    stop = CodeStop(lambda ids: tok.decode(ids, skip_special_tokens=True))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    k = stop.through_code(ids)
    assert k is not None
    kept = tok.decode(ids[:k])
    assert code_closed(kept) and not code_closed(tok.decode(ids[: k - 1]))
    assert extract_code(kept) == extract_code(text[: code_end(text)])
    assert [n + 1 for n in range(len(ids)) if stop(ids[: n + 1])][0] == k  # the per-step question agrees


def test_code_stop_never_ends_an_open_block() -> None:
    tok = _qwen_tokenizer()
    stop = CodeStop(lambda ids: tok.decode(ids, skip_special_tokens=True))
    ids = tok("```python\nprint('```')\nx = '~~~'\n", add_special_tokens=False)["input_ids"]
    assert stop.through_code(ids) is None and not any(stop(ids[: n + 1]) for n in range(len(ids)))


# ------------------------------------------------------------------ vLLM: stop at every fence, go on while open
def test_vllm_rows_go_on_past_the_opening_fence_and_end_at_the_closing_one() -> None:
    """Tokens: 1 = "```python\\n", 2 = "print(1)\\n", 3 = "```", 4 = "prose", 9 = EOS (a stand-in vocabulary)."""
    words = {1: "```python\n", 2: "print(1)\n", 3: "```", 4: "prose", 9: ""}
    closed = CodeStop(lambda ids: "".join(words[i] for i in ids))
    script = {0: [1, 2, 3, 4, 4, 9], 1: [4, 4, 4, 4, 4, 4], 2: [4, 9], 3: [1, 2, 2, 2, 2, 2]}  # what each row would write
    calls = []

    def generate(rows, prompts, max_tokens, rnd):  # noqa: ANN001, ANN202 -- stops after a fence token as vLLM does
        calls.append((list(rows), [len(p) for p in prompts], list(max_tokens), rnd))
        outs = []
        for r, p, m in zip(rows, prompts, max_tokens, strict=True):
            done = len(p) - 1  # prompts are [100] + tokens so far
            toks = []
            for t in script[r][done: done + m]:
                toks.append(t)
                if t in (1, 3):
                    outs.append(Round(toks, "stop", "```"))
                    break
                if t == 9:
                    outs.append(Round(toks[:-1], "stop", None))  # vLLM leaves the stop token out
                    break
            else:
                outs.append(Round(toks, "length", None))
        return outs

    got = sample_until_code(generate, [[100]] * 4, 6, closed, [9])
    assert [(g.completion_ids, g.finish_reason) for g in got] == [
        ([1, 2, 3], "code"), ([4] * 6, "length"), ([4, 9], "eos"), ([1, 2, 2, 2, 2, 2], "length")]
    assert calls == [([0, 1, 2, 3], [1, 1, 1, 1], [6, 6, 6, 6], 0), ([0, 3], [2, 2], [5, 5], 1)]
    # without the stop (closed None) a fence string ends nothing: one round
    calls.clear()
    free = sample_until_code(lambda rows, prompts, m, rnd: [Round(script[r][:6], "length", None) for r in rows], [[100]] * 4, 6, None, [9])
    assert [g.completion_ids for g in free] == [script[r] for r in range(4)]
