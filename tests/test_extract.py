"""Code extraction on realistic model outputs (shapes taken from real samples of the built-in models)."""

from __future__ import annotations

from sdpo_ttt.policy.extract import extract_code, looks_like_program

# Qwen2.5-Coder-0.5B often opens the fence with the language on its own line.
QWEN_TAG_ON_NEXT_LINE = """To solve this problem, we read two integers and print their sum.

```
python
a, b = map(int, input().split())
print(a + b)
```

This code reads the input, splits it and prints the sum."""

TAGGED_WITH_EXPLANATION = """Here is a Python code that accomplishes this:

```python
def count_vowels(s: str) -> int:
    return sum(1 for ch in s.lower() if ch in "aeiou")
```

Example usage:

```python
print(count_vowels("Hello"))
```
"""

SOLUTION_THEN_IO_EXAMPLE = """```python
import sys

def main():
    n = int(sys.stdin.readline())
    for i in range(1, n + 1):
        print("FizzBuzz" if i % 15 == 0 else "Fizz" if i % 3 == 0 else "Buzz" if i % 5 == 0 else i)

main()
```

For the input

```
5
```

the output is

```text
1
2
Fizz
4
Buzz
```"""

UNCLOSED_AT_LENGTH_LIMIT = """```python
def sum_two_integers(num1, num2):
    return num1 + num2

a, b = map(int, input().split())
print(sum_two_integers(a, b))
if a > b:
    print(a -"""

UNTAGGED_CODE = """Here's a simple Python solution to do that:
```
a, b = map(int, input().split())
print(a + b)
```
"""

PROSE_ONLY = """I'm sorry, but I cannot solve this problem without more information about the input format.
Could you please clarify what the program should read?"""

BARE_CODE = """import sys
a, b = map(int, sys.stdin.read().split())
print(a + b)
"""

REVISED_LONGER_SECOND = """First attempt:

```python
print(sum(map(int, input().split())))
```

A more robust version that handles several lines:

```python
import sys

data = sys.stdin.read().split()
total = 0
for tok in data:
    total += int(tok)
print(total)
```
"""

TILDE_FENCE = """~~~python
print(input()[::-1])
~~~"""

BASH_ONLY = """Run it with:

```bash
python3 solution.py < input.txt
```"""


def test_tag_on_its_own_line() -> None:
    assert extract_code(QWEN_TAG_ON_NEXT_LINE) == "a, b = map(int, input().split())\nprint(a + b)\n"


def test_longest_block_wins_over_a_trailing_usage_snippet() -> None:
    code = extract_code(TAGGED_WITH_EXPLANATION)
    assert code is not None and code.startswith("def count_vowels") and "print(count_vowels" not in code


def test_io_example_blocks_are_not_code() -> None:
    code = extract_code(SOLUTION_THEN_IO_EXAMPLE)
    assert code is not None and code.startswith("import sys") and code.rstrip().endswith("main()")


def test_unclosed_block_runs_to_the_end() -> None:
    code = extract_code(UNCLOSED_AT_LENGTH_LIMIT)
    assert code is not None and code.startswith("def sum_two_integers") and code.endswith("print(a -\n")


def test_untagged_block_that_looks_like_code() -> None:
    assert extract_code(UNTAGGED_CODE) == "a, b = map(int, input().split())\nprint(a + b)\n"


def test_prose_only_has_no_code() -> None:
    assert extract_code(PROSE_ONLY) is None
    assert extract_code("") is None
    assert extract_code("Sure") is None  # a bare name parses as Python but is not a program


def test_bare_code_without_fences() -> None:
    assert extract_code(BARE_CODE) == BARE_CODE


def test_multiple_python_blocks_longest() -> None:
    code = extract_code(REVISED_LONGER_SECOND)
    assert code is not None and "for tok in data" in code


def test_tilde_fence() -> None:
    assert extract_code(TILDE_FENCE) == "print(input()[::-1])\n"


def test_other_languages_are_skipped() -> None:
    assert extract_code(BASH_ONLY) is None


def test_tagged_block_with_syntax_error_is_still_the_attempt() -> None:
    # the sandbox's compile_error verdict is better feedback than "no code"
    text = "```python\ndef f(:\n    return 1\n```"
    assert extract_code(text) == "def f(:\n    return 1\n"


def test_looks_like_program() -> None:
    assert looks_like_program("print(1)")
    assert looks_like_program("x = 1")
    assert not looks_like_program("7")
    assert not looks_like_program("3 4")
    assert not looks_like_program("hello")
