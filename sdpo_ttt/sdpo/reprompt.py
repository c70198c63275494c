"""Re-prompts built from verifier feedback: the SDPO teacher's context and the multi-turn baseline's.

Both are plain text for the user turn; `Contexts` wraps them in the model's chat template exactly as it
wraps the student's prompt, so teacher and student differ only in what the user turn says:

    student  x            = [system] + question
    teacher  (x, [d], f)  = [system] + question + [demo d] + feedback f + closing line    (SDPO, paper §3)
    chain    (x, f1..fk)  = [system] + question + feedback of the chain's earlier attempts (multi-turn)

Prompts never exceed `max_prompt_tokens`: the teacher's feedback is cut middle-out until it fits, the
multi-turn chain drops its oldest feedback first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_DEMO_TEMPLATE = "\nCorrect solution:\n\n{demo}\n\n"
DEFAULT_FEEDBACK_TEMPLATE = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback}\n\n"
DEFAULT_CLOSING = "\n\nCorrectly solve the original question."
CUT_MARK = "\n...\n"
MIN_FEEDBACK_CHARS = 64  # feedback is never cut below this; a prompt that still does not fit is used as is

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class ReprompTemplates:
    """Templates of the SDPO re-prompt (paper §3; lasgroup/SDPO defaults). `{demo}` / `{feedback}` are filled in."""

    demo: str = DEFAULT_DEMO_TEMPLATE
    feedback: str = DEFAULT_FEEDBACK_TEMPLATE
    closing: str = DEFAULT_CLOSING


def teacher_user_turn(question: str, feedback: str | None, demo: str | None = None, templates: ReprompTemplates = ReprompTemplates()) -> str:
    """The teacher's user turn: question + optional successful sibling (demo) + this attempt's feedback + closing line.

    With neither feedback nor demo the teacher sees the plain question: teacher context == student context.
    """
    if not feedback and not demo:
        return question
    text = question
    if demo:
        text += templates.demo.format(demo=demo)
    if feedback:
        text += templates.feedback.format(feedback=feedback)
    return text + templates.closing


def multi_turn_user_turn(question: str, feedbacks: list[str], templates: ReprompTemplates = ReprompTemplates()) -> str:
    """The multi-turn baseline's user turn: question + the feedback of each earlier attempt (oldest first)."""
    if not feedbacks:
        return question
    text = question
    for fb in feedbacks:
        text += templates.feedback.format(feedback=fb)
    return text + templates.closing


def cut_middle(text: str) -> str:
    """Keep the first and the last quarter of `text` (tracebacks and diffs matter at both ends)."""
    keep = len(text) // 4
    return text[:keep] + CUT_MARK + text[-keep:]


def user_turn(messages: Messages) -> str:
    """The last user turn's text (the question x)."""
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def with_user_turn(messages: Messages, text: str) -> Messages:
    """A copy of `messages` whose last user turn says `text`."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = text
            break
    return out


class Contexts:
    """Prompt token ids of the three contexts for one problem, each within `max_prompt_tokens`.

    `chat_ids` renders messages through the model's chat template (`Policy.chat_ids`); anything with the same
    signature works, so the fitting rules are testable without a model.
    """

    def __init__(self, chat_ids: Callable[[Messages], list[int]], messages: Messages, max_prompt_tokens: int,
                 templates: ReprompTemplates = ReprompTemplates()) -> None:
        self.chat_ids = chat_ids
        self.messages = messages
        self.question = user_turn(messages)
        self.limit = max_prompt_tokens
        self.templates = templates

    def _ids(self, text: str) -> list[int]:
        return self.chat_ids(with_user_turn(self.messages, text))

    def student(self) -> list[int]:
        """x: the plain question."""
        return self.chat_ids(self.messages)

    def teacher(self, feedback: str, demo: str | None = None) -> list[int]:
        """(x, [d], f): the feedback is cut middle-out (halved each round) until the prompt fits."""
        while True:
            ids = self._ids(teacher_user_turn(self.question, feedback or None, demo, self.templates))
            if len(ids) <= self.limit or len(feedback) < MIN_FEEDBACK_CHARS:
                return ids
            feedback = cut_middle(feedback)

    def multi_turn(self, feedbacks: list[str]) -> list[int]:
        """(x, f1..fk): the oldest feedback is dropped first until the prompt fits."""
        kept = list(feedbacks)
        while True:
            ids = self._ids(multi_turn_user_turn(self.question, kept, self.templates))
            if len(ids) <= self.limit or not kept:
                return ids
            kept.pop(0)
