"""Thinking off, as in the paper's runs (issue 26, part 3): `enable_thinking=False` reaches the chat template of the
student's prompt and of every teacher context; `--thinking` turns it on. A tiny Qwen3-style template stands in
for a thinking model (no download): it writes an empty think block into the generation prompt exactly when
`enable_thinking` is false, as Qwen3's does."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest

from sdpo_ttt.config.policy import PolicyConfig
from sdpo_ttt.policy.model import Policy
from sdpo_ttt.policy.prompting import chat_text
from sdpo_ttt.sdpo.reprompt import Contexts

THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
EMPTY_THINK = "<|im_start|>assistant\n<think>\n\n</think>\n\n"
MESSAGES = [{"role": "system", "content": "S."}, {"role": "user", "content": "Add two numbers."}]


@functools.cache
def _tokenizer(template: str | None):  # noqa: ANN202
    from transformers import AutoTokenizer

    from sdpo_ttt.policy.catalog import model_dir

    d = model_dir("smollm2-135m")
    if not (d / "tokenizer.json").is_file():
        pytest.skip(f"no tokenizer at {d}: run `bash scripts/setup.sh`")
    tok = AutoTokenizer.from_pretrained(d)
    tok.chat_template = template
    return tok


def _policy(thinking: bool, template: str | None = THINKING_TEMPLATE) -> Policy:
    """Policy.chat_ids needs only the tokenizer and the config: no model is loaded."""
    return SimpleNamespace(tokenizer=_tokenizer(template), cfg=PolicyConfig(thinking=thinking))  # type: ignore[return-value]


def _text(pol: Policy, ids: list[int]) -> str:
    return pol.tokenizer.decode(ids)


def test_thinking_is_off_by_default_in_the_student_prompt_and_every_teacher_context() -> None:
    assert PolicyConfig().thinking is False
    pol = _policy(thinking=PolicyConfig().thinking)
    contexts = Contexts(lambda m: Policy.chat_ids(pol, m), MESSAGES, 4096)
    for ids in (contexts.student(), contexts.teacher("Test 1 failed."), contexts.teacher("", demo="print(1)"),
                contexts.multi_turn(["Test 1 failed."])):
        assert _text(pol, ids).endswith(EMPTY_THINK)


def test_the_thinking_option_leaves_the_template_its_think_block() -> None:
    pol = _policy(thinking=True)
    contexts = Contexts(lambda m: Policy.chat_ids(pol, m), MESSAGES, 4096)
    for ids in (contexts.student(), contexts.teacher("Test 1 failed.")):
        text = _text(pol, ids)
        assert text.endswith("<|im_start|>assistant\n") and "<think>" not in text


def test_templates_without_thinking_are_unchanged() -> None:
    plain = "{%- for m in messages %}[{{ m.role }}] {{ m.content }}\n{%- endfor %}{%- if add_generation_prompt %}[assistant] {%- endif %}"
    tok = _tokenizer(plain)
    assert chat_text(tok, MESSAGES) == chat_text(tok, MESSAGES, thinking=True) == tok.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True)
    assert chat_text(_tokenizer(None), MESSAGES).endswith("User: Add two numbers.\n\nAssistant:")  # no template at all
