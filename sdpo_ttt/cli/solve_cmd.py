"""`sdpo-ttt solve`: run the discovery loop on one problem (any strategy; SDPO by default)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from sdpo_ttt.cli.display import LiveReporter, PlainReporter, explain_end, interrupted_hint
from sdpo_ttt.config import field_help as h


def register(app: typer.Typer) -> None:
    @app.command()
    def solve(
        problem: Optional[Path] = typer.Argument(None, help="problem.json (or its folder). Not needed with --resume."),
        budget: Optional[int] = typer.Option(None, help=h("budget") + " [default: 256]"),
        strategy: Optional[str] = typer.Option(None, help=h("strategy") + " [default: sdpo]"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help=h("batch_size")),
        steps_per_batch: Optional[int] = typer.Option(None, help=h("steps_per_batch") + " [default: 1]"),
        micro_batch_size: Optional[int] = typer.Option(None, help=h("micro_batch_size") + " [default: 1]"),
        lr: Optional[float] = typer.Option(None, help=h("lr") + " [default: 1e-4]"),
        lora_rank: Optional[int] = typer.Option(None, help=h("lora_rank") + " [default: 16]"),
        lora_alpha: Optional[int] = typer.Option(None, help=h("lora_alpha") + " [default: 32]"),
        lora_targets: Optional[str] = typer.Option(None, help=h("lora_targets") + " Comma-separated. [default: attention + MLP projections]"),
        loss: Optional[str] = typer.Option(None, help=h("loss") + " [default: logit]"),
        alpha: Optional[float] = typer.Option(None, help=h("alpha") + " [default: 1.0]"),
        topk: Optional[int] = typer.Option(None, help=h("topk") + " [default: 20]"),
        teacher: Optional[str] = typer.Option(None, help=h("teacher") + " [default: ema]"),
        teacher_rate: Optional[float] = typer.Option(None, help=h("teacher_rate") + " [default: 0.01]"),
        grpo_weight: Optional[float] = typer.Option(None, help=h("grpo_weight") + " [default: 0]"),
        kl_weight: Optional[float] = typer.Option(None, help=h("kl_weight") + " [default: 0]"),
        adv_clip: Optional[float] = typer.Option(None, help=h("adv_clip")),
        temperature: Optional[float] = typer.Option(None, help=h("temperature") + " [default: 1.0]"),
        top_p: Optional[float] = typer.Option(None, help=h("top_p") + " [default: 1.0]"),
        max_new_tokens: Optional[int] = typer.Option(None, help=h("max_new_tokens") + " [default: 512]"),
        max_prompt_tokens: Optional[int] = typer.Option(None, help=h("max_prompt_tokens") + " [default: 4096]"),
        feedback_visibility: Optional[str] = typer.Option(None, help=h("feedback_visibility") + " [default: public]"),
        seed: Optional[int] = typer.Option(None, help=h("seed") + " [default: 0]"),
        model: Optional[str] = typer.Option(None, help=h("model") + " [default: qwen2.5-coder-0.5b]"),
        device: Optional[str] = typer.Option(None, help=h("device")),
        dtype: Optional[str] = typer.Option(None, help=h("dtype")),
        backend: Optional[str] = typer.Option(None, help=h("backend") + " [default: hf]"),
        vllm_gpu_memory: Optional[float] = typer.Option(None, help=h("vllm_gpu_memory") + " [default: 0.4]"),
        sandbox: Optional[str] = typer.Option(None, help=h("sandbox") + " [default: auto]"),
        sandbox_workers: Optional[int] = typer.Option(None, help=h("sandbox_workers") + " [default: 2]"),
        run_dir: Optional[Path] = typer.Option(None, help="Where the run is written [default: runs/<problem>-<strategy>-s<seed>-<time>]."),
        config: Optional[Path] = typer.Option(None, "--config", help="TOML or YAML file of options (keys as above, '-' or '_'); options given here override it."),
        resume: Optional[Path] = typer.Option(None, help="Continue a killed run from its last complete step (uses that run's config)."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No live display; print only the result line."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout (no live display)."),
    ) -> None:
        """Sample attempts, judge them in the sandbox, learn from feedback (SDPO), stop at the first full pass.

        Exit code: 0 solved, 1 budget spent unsolved, 2 bad input.
        """
        from sdpo_ttt.errors import UserError
        from sdpo_ttt.solve import cli_config, solve as run_solve

        err = Console(stderr=True)
        values = dict(
            budget=budget, strategy=strategy, batch_size=batch_size, steps_per_batch=steps_per_batch,
            micro_batch_size=micro_batch_size, lr=lr, lora_rank=lora_rank, lora_alpha=lora_alpha,
            lora_targets=[t.strip() for t in lora_targets.split(",") if t.strip()] if lora_targets else None,
            loss=loss, alpha=alpha, topk=topk, teacher=teacher, teacher_rate=teacher_rate, grpo_weight=grpo_weight,
            kl_weight=kl_weight, adv_clip=adv_clip, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
            max_prompt_tokens=max_prompt_tokens, feedback_visibility=feedback_visibility, seed=seed, model=model,
            device=device, dtype=dtype, backend=backend, vllm_gpu_memory=vllm_gpu_memory, sandbox=sandbox, sandbox_workers=sandbox_workers,
        )
        if resume is not None:
            given = [k for k, v in values.items() if v is not None]
            if problem is not None or given or config is not None:
                raise UserError("--resume continues a run with its own saved config", "drop the problem and the other options")
            cfg = None
        else:
            if problem is None:
                raise UserError("no problem given", "pass a problem.json (or folder), e.g. `sdpo-ttt solve problems/two-sum/problem.json`")
            cfg = cli_config(config, values)
        live = not (quiet or json_out) and sys.stderr.isatty()
        reporter = LiveReporter(err) if live else PlainReporter(err, quiet or json_out)
        announce = (lambda m: err.print(f"[yellow]{m}[/]")) if not json_out else (lambda m: err.print(m))
        try:
            summary, run = run_solve(problem, cfg, run_dir=run_dir, resume=resume, reporter=reporter, announce=announce)
        except KeyboardInterrupt:
            reporter.stop()
            err.print(interrupted_hint(reporter.run_dir), highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        finally:
            reporter.stop()
        if json_out:
            typer.echo(json.dumps({**asdict(summary), "run_dir": str(run.path)}))
        elif summary.solved:
            Console().print(
                f"[bold green]solved[/] {summary.problem_id} at attempt {summary.discovery_attempt} of {summary.budget} "
                f"({summary.wall_time_s:.0f} s) -> {run.solution_path}"
            )
        else:
            Console().print(
                f"[bold red]not solved[/] {summary.problem_id}: {summary.attempts_used} attempts, best score {summary.best_score:.2f} "
                f"({summary.wall_time_s:.0f} s); run: {run.path}"
            )
            why = explain_end(asdict(summary), run.read_attempts(), int(run.read_config().get("max_new_tokens", 0)))
            if why:
                Console().print(why, highlight=False, soft_wrap=True)
        raise typer.Exit(0 if summary.solved else 1)
