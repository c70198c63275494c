"""The prompt for a problem: a system turn and a user turn, later rendered by the model's chat template.

The user turn (the "question" x of SDPO) is `user_template` filled with the statement and the I/O
instructions for the problem's kind; the SDPO teacher re-prompt reuses the same question text. `chat_text`
renders turns through the model's chat template, for the student's prompt and every teacher context alike
(`Policy.chat_ids`, which `sdpo/reprompt.Contexts` is given), with thinking off unless asked for.
"""

from __future__ import annotations

from typing import Any

DEFAULT_SYSTEM_PROMPT = (
    "You are an expert competitive programmer. Solve the problem in Python 3. "
    "Think briefly if needed, then give your complete solution in a single ```python code block."
)

DEFAULT_USER_TEMPLATE = "{statement}\n\n{instructions}"

STDIO_INSTRUCTIONS = (
    "Write a complete Python 3 program that reads the input from standard input and prints the answer "
    "to standard output, exactly in the format described. Do not print prompts or any extra text. "
    "Put the whole program in one ```python code block."
)

FUNCTION_INSTRUCTIONS = (
    "Implement `{name}` in Python 3. Your code will be imported and `{name}` called once per test with the "
    "arguments; return the answer (do not read input or print). Start from this code:\n\n```python\n{starter}\n```\n\n"
    "Put the complete code in one ```python code block."
)

FUNCTION_INSTRUCTIONS_NO_STARTER = (
    "Implement a function named `{name}` in Python 3. It will be imported and called once per test with the "
    "arguments; return the answer (do not read input or print). Put the complete code in one ```python code block."
)


SCRIPT_INSTRUCTIONS = (
    "Implement the function `{name}` in Python 3 (its signature and docstring are above). Tests will import your "
    "code and call `{name}`; return the answer (do not read input or print). Put the complete code, with any "
    "imports and helper functions it needs, in one ```python code block."
)


def instructions(problem: Any) -> str:
    """I/O instructions for the problem's kind (stdio program, or function with its signature/starter code)."""
    kind = getattr(problem.kind, "value", problem.kind)
    if kind == "function":
        fn = problem.function
        starter = (fn.starter_code or "").strip("\n")
        if starter:
            return FUNCTION_INSTRUCTIONS.format(name=fn.name, starter=starter)
        return FUNCTION_INSTRUCTIONS_NO_STARTER.format(name=fn.name)
    if kind == "script":
        return SCRIPT_INSTRUCTIONS.format(name=problem.script.entry_point)
    return STDIO_INSTRUCTIONS


def question_text(problem: Any, user_template: str | None = None) -> str:
    """The user turn for a problem: the template filled with {statement} and {instructions}."""
    template = user_template if user_template is not None else DEFAULT_USER_TEMPLATE
    try:
        return template.format(statement=problem.statement.strip(), instructions=instructions(problem))
    except (KeyError, IndexError) as e:
        from sdpo_ttt.errors import ConfigError

        raise ConfigError(
            f"user template has an unknown placeholder {e}",
            "use only {statement} and {instructions}; write literal braces as {{ and }}",
        ) from None


def problem_messages(problem: Any, system_prompt: str | None = None, user_template: str | None = None) -> list[dict[str, str]]:
    """System + user turn for a problem. An empty system prompt ("") leaves the system turn out."""
    system = system_prompt if system_prompt is not None else DEFAULT_SYSTEM_PROMPT
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": question_text(problem, user_template)})
    return msgs


def chat_text(tokenizer: Any, messages: list[dict[str, str]], *, thinking: bool = False) -> str:
    """The messages through the tokenizer's chat template, ending with the assistant generation prompt.

    `enable_thinking=thinking` goes to every template: those of thinking models (Qwen3) open the answer with an
    empty think block when it is False (the paper's runs have thinking off), the others never read it. A
    tokenizer without a template (a base model) gets a plain transcript."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=thinking)
    return "".join(f"{m['role'].capitalize()}: {m['content']}\n\n" for m in messages) + "Assistant:"
