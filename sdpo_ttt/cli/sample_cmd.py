"""`sdpo-ttt sample PROBLEM -n 8 [--judge]`: see what the model does on a problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the `sample` command to the app."""

    @app.command("sample")
    def sample(
        problem: Path = typer.Argument(..., help="problem.json or a problem folder"),
        n: int = typer.Option(8, "-n", "--num", min=1, help="number of attempts"),
        judge: bool = typer.Option(False, "--judge", help="run each attempt in the sandbox and show its verdict and feedback"),
        model: str = typer.Option("qwen2.5-coder-0.5b", "--model", help="built-in name, HF id, local folder or .gguf file"),
        seed: int = typer.Option(0, "--seed"),
        temperature: float = typer.Option(1.0, "--temperature", min=0.0, help="0 = greedy"),
        top_p: float = typer.Option(1.0, "--top-p", min=0.0, max=1.0),
        max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=1),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="prompts per generate call (default: all n)"),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N"),
        dtype: str = typer.Option("auto", "--dtype", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16"),
        adapter: Optional[Path] = typer.Option(None, "--adapter", help="a saved student adapter directory to sample with"),
        sandbox: str = typer.Option("auto", "--sandbox", help="auto, docker or local (with --judge)"),
        visibility: str = typer.Option("public", "--feedback-visibility", help="which tests feedback may show (with --judge)"),
        as_json: bool = typer.Option(False, "--json", help="one JSON object per attempt on stdout"),
    ) -> None:
        """Sample attempts at a problem and print them (with --judge: verdicts and feedback too)."""
        from rich.console import Console
        from rich.panel import Panel
        from rich.syntax import Syntax

        from sdpo_ttt.policy.config import PolicyConfig
        from sdpo_ttt.policy.model import Policy
        from sdpo_ttt.policy.sampling import sample_attempts
        from sdpo_ttt.problem import load_problem

        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        prob = load_problem(problem)
        err = Console(stderr=True)
        with err.status(f"loading {model}..."):
            policy = Policy.load(PolicyConfig(model=model, device=device, dtype=dtype), seed=seed)
        if adapter is not None:
            policy.load_adapter("student", adapter)
        with err.status(f"sampling {n} attempt(s) at {prob.id} on {policy.device.type}..."):
            attempts = sample_attempts(policy, prob, n, seed=seed, temperature=temperature, top_p=top_p,
                                       max_new_tokens=max_new_tokens, batch_size=batch_size)
        verdicts, feedback = [None] * n, [""] * n
        if judge:
            from sdpo_ttt.loop import judge_batch
            from sdpo_ttt.sandbox import open_sandbox

            with err.status("judging..."), open_sandbox(sandbox, announce=lambda m: err.print(m, style="yellow")) as sb:
                verdicts, feedback = judge_batch(prob, sb, [a.code for a in attempts], visibility)
        out = Console()
        for i, (a, v, fb) in enumerate(zip(attempts, verdicts, feedback)):
            c = a.completion
            if as_json:
                rec = {"index": i, "text": c.text, "code": a.code, "n_tokens": len(c.completion_ids), "finish_reason": c.finish_reason}
                if v is not None:
                    rec.update(passed=v.passed, score=v.score, outcome=v.outcome.value, feedback=fb)
                typer.echo(json.dumps(rec))
                continue
            head = f"attempt {i}: {len(c.completion_ids)} tokens, {c.finish_reason}"
            if v is not None:
                colour = "green" if v.passed else "red"
                head += f" - [{colour}]{v.outcome.value}[/] ({v.score:.0%} of tests)"
            body = Syntax(a.code, "python", line_numbers=False, word_wrap=True) if a.code else f"[dim](no code found)[/]\n{c.text}"
            out.print(Panel(body, title=head, title_align="left"))
            if fb:
                out.print(Panel(fb, title="feedback", title_align="left", border_style="dim"), highlight=False)
        if judge and not as_json:
            passed = sum(1 for v in verdicts if v is not None and v.passed)
            out.print(f"[bold]{passed}/{n} passed[/]")
