"""`sdpo-ttt sample PROBLEM -n 8 [--judge]`: see what the model does on a problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from sdpo_ttt.cli.config_options import config_options

SAMPLE_OPTIONS = ("model", "device", "dtype", "backend", "system_prompt", "user_template", "seed", "temperature", "top_p",
                  "max_new_tokens", "feedback_style", "feedback_visibility", "held_back_fraction", "sandbox", "sandbox_workers")
SAMPLE_DEFAULTS = {"strategy": "best-of-k"}  # samples without learning (so a temperature of 0, greedy, is allowed)


def register(app: typer.Typer) -> None:
    """Add the `sample` command to the app."""

    @app.command("sample")
    @config_options(include=SAMPLE_OPTIONS, defaults=SAMPLE_DEFAULTS)
    def sample(
        problem: Path = typer.Argument(..., help="problem.json or a problem folder"),
        n: int = typer.Option(8, "-n", "--num", min=1, help="number of attempts"),
        judge: bool = typer.Option(False, "--judge", help="run each attempt in the sandbox and show its verdict and feedback"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="prompts per generate call (default: all n)"),
        adapter: Optional[Path] = typer.Option(None, "--adapter", help="a saved student adapter directory to sample with"),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML, YAML or JSON file of options (as for solve; the ones below apply)."),
        as_json: bool = typer.Option(False, "--json", help="one JSON object per attempt on stdout"),
        *,
        options: dict[str, Any],
    ) -> None:
        """Sample attempts at a problem and print them (with --judge: verdicts and feedback too)."""
        from rich.console import Console
        from rich.panel import Panel
        from rich.syntax import Syntax

        from sdpo_ttt.config.tree import resolve_config
        from sdpo_ttt.policy.model import Policy
        from sdpo_ttt.policy.sampling.programs import sample_programs
        from sdpo_ttt.policy.stop import code_cut
        from sdpo_ttt.problem.schema import load_problem

        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        cfg = resolve_config(config, options, SAMPLE_DEFAULTS)
        model, seed, sampling = cfg.policy.model, cfg.seed, cfg.sampling
        prob = load_problem(problem)
        err = Console(stderr=True)
        with err.status(f"loading {model}..."):
            policy = Policy.load(cfg.policy, seed=seed)
        try:  # close() shuts a vLLM engine down (its GPU memory and its process), whatever happens while sampling
            if adapter is not None:
                policy.load_adapter("student", adapter)
            with err.status(f"sampling {n} attempt(s) at {prob.id} on {policy.device.type}..."):
                samples = sample_programs(policy, prob, n, seed=seed, temperature=sampling.temperature, top_p=sampling.top_p,
                                         max_new_tokens=sampling.max_new_tokens, batch_size=batch_size)
        finally:
            policy.close()
        verdicts, feedback = [None] * n, [""] * n
        if judge:
            from sdpo_ttt.sandbox.feedback import FeedbackRules
            from sdpo_ttt.sandbox.judging import judge_batch
            from sdpo_ttt.sandbox import open_sandbox

            with err.status("judging..."), open_sandbox(cfg.judge.sandbox, workers=cfg.judge.sandbox_workers,
                                                          announce=lambda m: err.print(m, style="yellow")) as sb:
                cut_at = [sampling.max_new_tokens if code_cut(c.text, c.finish_reason) else None for c, _ in samples]
                rules = FeedbackRules.for_run(prob, cfg.judge, seed)
                verdicts, feedback = judge_batch(prob, sb, [code for _, code in samples], rules, cut_at)
        out = Console()
        for i, ((c, code), v, fb) in enumerate(zip(samples, verdicts, feedback, strict=True)):
            if as_json:
                rec = {"index": i, "text": c.text, "code": code, "n_tokens": len(c.completion_ids), "finish_reason": c.finish_reason}
                if v is not None:
                    rec.update(passed=v.passed, score=v.score, outcome=v.outcome.value, feedback=fb)
                typer.echo(json.dumps(rec))
                continue
            head = f"attempt {i}: {len(c.completion_ids)} tokens, {c.finish_reason}"
            if v is not None:
                colour = "green" if v.passed else "red"
                head += f" - [{colour}]{v.outcome.value}[/] ({v.score:.0%} of tests)"
            body = Syntax(code, "python", line_numbers=False, word_wrap=True) if code else f"[dim](no code found)[/]\n{c.text}"
            out.print(Panel(body, title=head, title_align="left"))
            if fb:
                out.print(Panel(fb, title="feedback", title_align="left", border_style="dim"), highlight=False)
        if judge and not as_json:
            passed = sum(1 for v in verdicts if v is not None and v.passed)
            out.print(f"[bold]{passed}/{n} passed[/]")
