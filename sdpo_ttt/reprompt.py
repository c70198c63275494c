"""Re-prompts built from verifier feedback: the SDPO teacher's context and the multi-turn baseline's.

Both are plain text for the user turn; the policy wraps them in the model's chat template, exactly as
it wraps the student's prompt, so teacher and student differ only in what the user turn says.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DEMO_TEMPLATE = "\nCorrect solution:\n\n{demo}\n\n"
DEFAULT_FEEDBACK_TEMPLATE = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback}\n\n"
DEFAULT_CLOSING = "\n\nCorrectly solve the original question."


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
