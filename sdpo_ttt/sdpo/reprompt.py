"""Re-prompts built from verifier feedback: the SDPO teacher's context, the multi-turn baseline's, and the refining
prompt of evolve / sdpo-evolve.

Both are plain text for the user turn; `Contexts` wraps them in the model's chat template exactly as it
wraps the student's prompt, so teacher and student differ only in what the user turn says:

    student  x            = [system] + question
    teacher  (x, [d], f)  = [system] + question + [demo d] + feedback f + closing line    (SDPO, paper §3)
    chain    (x, f1..fk)  = [system] + question + feedback of the chain's earlier attempts (multi-turn)
    refine   (x, p, f_p, [i1, i2])
                          = [system] + question + parent program p + its feedback f_p + [inspirations] + instruction
                            (evolve; sdpo-evolve's student, whose teacher adds the attempt's own feedback f:
                             `with_question(refine text).teacher(f, [d])`)

Prompts never exceed `max_prompt_tokens`: the teacher's feedback is cut middle-out until it fits, the
multi-turn chain drops its oldest feedback first, the refining prompt drops its inspirations (last first),
then cuts the parent's feedback middle-out. Programs are never cut.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

DEFAULT_DEMO_TEMPLATE = "\nCorrect solution:\n\n{demo}\n\n"
DEFAULT_FEEDBACK_TEMPLATE = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback}\n\n"
DEFAULT_CLOSING = "\n\nCorrectly solve the original question."
CUT_MARK = "\n...\n"
REFINE_PARENT = "\n\nHere is an earlier attempt at this problem; it scored {score:.2f} (the fraction of tests passed):\n\n```python\n{code}\n```\n"
REFINE_FEEDBACK = "\nThe following is feedback from running that attempt:\n\n{feedback}\n"
REFINE_PASSED = "\nIt passed every test.\n"
REFINE_INSPIRATION = "\nAnother earlier attempt, for ideas (score {score:.2f}):\n\n```python\n{code}\n```\n"
REFINE_INSTRUCTION = ("\nWrite an improved, complete program that fixes the problems of the earlier attempt. "
                      "Put the whole program in one ```python code block.")
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


@dataclass(frozen=True)
class Program:
    """An archived attempt as a refining prompt shows it: its code, verifier score and feedback ("" if it passed)."""

    code: str
    score: float
    feedback: str = ""


def refine_user_turn(question: str, parent: Program, inspirations: Sequence[Program] = ()) -> str:
    """The refining user turn: question + the parent's code, score and feedback + other programs for ideas + the
    instruction to write an improved complete program."""
    text = question + REFINE_PARENT.format(score=parent.score, code=parent.code.rstrip("\n"))
    text += REFINE_FEEDBACK.format(feedback=parent.feedback) if parent.feedback else REFINE_PASSED
    for p in inspirations:
        text += REFINE_INSPIRATION.format(score=p.score, code=p.code.rstrip("\n"))
    return text + REFINE_INSTRUCTION


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

    def refine_text(self, parent: Program, inspirations: Sequence[Program] = ()) -> str:
        """The refining user turn, fitted: inspirations dropped (last first), then the parent's feedback cut
        middle-out (halved each round, never below MIN_FEEDBACK_CHARS), until the prompt fits."""
        kept = list(inspirations)
        while True:
            text = refine_user_turn(self.question, parent, kept)
            if len(self._ids(text)) <= self.limit:
                return text
            if kept:
                kept.pop()
            elif len(parent.feedback) >= MIN_FEEDBACK_CHARS:
                parent = Program(parent.code, parent.score, cut_middle(parent.feedback))
            else:
                return text

    def refine(self, parent: Program, inspirations: Sequence[Program] = ()) -> list[int]:
        """(x, p, f_p, [i]): the prompt that asks for an improved version of `parent`."""
        return self._ids(self.refine_text(parent, inspirations))

    def with_question(self, text: str) -> "Contexts":
        """The same contexts for another user turn: `with_question(refine_text).teacher(f, d)` is sdpo-evolve's teacher
        (the refining prompt + the attempt's own feedback), its `student()` the refining prompt."""
        return Contexts(self.chat_ids, with_user_turn(self.messages, text), self.limit, self.templates)
