"""How the next batch is drawn and what is learned from it: sdpo, best-of-k, multi-turn (evolve and sdpo-evolve in
run/evolve.py), and the one registry
of strategies (`STRATEGIES`: name -> class, whether it learns), keyed by the names in config/strategies.py.

Everything else (sampling, judging, logging, stopping, budget) is shared in loop.py.
Adding a strategy: its name and help in config/strategies.py, a class with the `Strategy` protocol and its
`StrategySpec` in STRATEGIES, and a colour and dash in report/styles.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sdpo_ttt.config.strategies import StrategyName
from sdpo_ttt.run.evolve import Evolve, SDPOEvolve
from sdpo_ttt.sdpo.reprompt import Contexts
from sdpo_ttt.sandbox.attempt import Attempt

if TYPE_CHECKING:
    from sdpo_ttt.config.tree import SolveConfig
    from sdpo_ttt.policy.model import Policy
    from sdpo_ttt.sdpo.update import Phase


class Strategy(Protocol):
    name: str
    sample_adapter: str | None  # adapter to sample with ("student") or None for the base model

    def prompts(self, n: int) -> list[list[int]]: ...
    def observe(self, attempts: list[Attempt]) -> dict[str, float]: ...
    def save(self, directory: Path) -> None: ...
    def load(self, directory: Path, history: list[dict]) -> None: ...


class BestOfK:
    """i.i.d. samples from the base model; nothing is learned."""

    name = "best-of-k"
    sample_adapter = None

    def __init__(self, policy: "Policy", messages: list[dict[str, str]], cfg: "SolveConfig") -> None:
        self.prompt = policy.chat_ids(messages)

    def prompts(self, n: int) -> list[list[int]]:
        return [list(self.prompt) for _ in range(n)]

    def observe(self, attempts: list[Attempt]) -> dict[str, float]:
        return {}

    def save(self, directory: Path) -> None:
        pass

    def load(self, directory: Path, history: list[dict]) -> None:
        pass


class MultiTurn:
    """B parallel chains; chain c is re-prompted with the question plus the feedback of its earlier attempts."""

    name = "multi-turn"
    sample_adapter = None

    def __init__(self, policy: "Policy", messages: list[dict[str, str]], cfg: "SolveConfig") -> None:
        self.contexts = Contexts(policy.chat_ids, messages, cfg.sampling.max_prompt_tokens)
        self.feedbacks: dict[int, list[str]] = {}  # chain -> its attempts' feedback, oldest first

    def prompts(self, n: int) -> list[list[int]]:
        return [self.contexts.multi_turn(self.feedbacks.get(c, [])) for c in range(n)]

    def observe(self, attempts: list[Attempt]) -> dict[str, float]:
        for a in attempts:
            if a.feedback:
                self.feedbacks.setdefault(a.chain, []).append(a.feedback)
        return {"multi_turn/mean_feedback_turns": sum(len(v) for v in self.feedbacks.values()) / max(len(self.feedbacks), 1)}

    def save(self, directory: Path) -> None:
        pass  # the chains' feedback is rebuilt from attempts.jsonl on resume

    def load(self, directory: Path, history: list[dict]) -> None:
        for rec in history:
            if rec.get("feedback"):
                self.feedbacks.setdefault(int(rec["chain"]), []).append(rec["feedback"])


class SDPO:
    """Sample from base + LoRA on the plain prompt; learn by self-distillation from the feedback-conditioned teacher."""

    name = "sdpo"
    sample_adapter = "student"

    def __init__(self, policy: "Policy", messages: list[dict[str, str]], cfg: "SolveConfig", on_phase: "Phase | None" = None) -> None:
        from sdpo_ttt.sdpo.update import SDPOUpdater

        self.policy = policy
        self.contexts = Contexts(policy.chat_ids, messages, cfg.sampling.max_prompt_tokens)
        self.prompt = self.contexts.student()
        self.updater = SDPOUpdater(policy, cfg.sdpo, cfg.optim, self.contexts, on_phase)

    def prompts(self, n: int) -> list[list[int]]:
        return [list(self.prompt) for _ in range(n)]

    def observe(self, attempts: list[Attempt]) -> dict[str, float]:
        return self.updater.step(attempts)

    def save(self, directory: Path) -> None:
        self.policy.save_adapter("student", directory / "student")
        self.policy.save_adapter("teacher", directory / "teacher")
        import torch

        torch.save(self.updater.state_dict(), directory / "optimizer.pt")

    def load(self, directory: Path, history: list[dict]) -> None:
        self.policy.load_adapter("student", directory / "student")
        self.policy.load_adapter("teacher", directory / "teacher")
        import torch

        self.updater.load_state_dict(torch.load(directory / "optimizer.pt", weights_only=True))


def sdpo_evolve(policy: "Policy", messages: list[dict[str, str]], cfg: "SolveConfig", on_phase: "Phase | None" = None) -> SDPOEvolve:
    """sdpo-evolve: evolve's archive and prompts, sdpo's student, update and checkpoint."""
    return SDPOEvolve(policy, messages, cfg, SDPO(policy, messages, cfg, on_phase))


def batch_parents(strategy: Strategy, n: int) -> list[int | None]:
    """The parent of each prompt of the strategy's last batch (`last_parents` of a refining strategy), else None each."""
    parents = getattr(strategy, "last_parents", None)
    return list(parents) if parents is not None else [None] * n


@dataclass(frozen=True)
class StrategySpec:
    """One strategy as the rest of the program sees it (its name and help are data in config/strategies.py)."""

    name: StrategyName
    make: Callable[..., Strategy]  # (policy, messages, cfg), and on_phase when `phases`
    learns: bool  # False: samples from the base model and never updates it, so one loaded model can serve many runs
    phases: bool = False  # its update announces micro-batch phases: `make` takes an on_phase callback (sdpo/update.py)


# In report order (the order of config/strategies.py).
STRATEGIES: dict[str, StrategySpec] = {
    s.name: s
    for s in (
        StrategySpec("sdpo", SDPO, learns=True, phases=True),
        StrategySpec("sdpo-evolve", sdpo_evolve, learns=True, phases=True),
        StrategySpec("multi-turn", MultiTurn, learns=False),
        StrategySpec("evolve", Evolve, learns=False),
        StrategySpec("best-of-k", BestOfK, learns=False),
    )
}


def make_strategy(cfg: "SolveConfig", policy: "Policy", messages: list[dict[str, str]], on_phase: "Phase | None" = None) -> Strategy:
    """The run's strategy; on_phase: told the update's micro-batch phases (a display subscribing to them)."""
    spec = STRATEGIES[cfg.strategy]
    return spec.make(policy, messages, cfg, on_phase) if spec.phases else spec.make(policy, messages, cfg)
