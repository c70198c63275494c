"""`sdpo-ttt sandbox build|check|reap`: the sandbox image and backend. Thin: library call + rendering."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from sdpo_ttt.cli.config_options import choice_enum

sandbox_app = typer.Typer(name="sandbox", help="The verifier's sandbox: build its image, check it, reap stale containers.",
                          no_args_is_help=True)

SandboxKind = choice_enum("sandbox", "SandboxKind")  # the run config's choices, declared once


@sandbox_app.command("build")
def build(
    offline: bool = typer.Option(False, "--offline", help="debootstrap + docker import (no registry needed; root)"),
    tag: str = typer.Option("sdpo-ttt-sandbox:latest", help="image tag"),
    mirror: str = typer.Option("", help="Debian mirror for --offline (default: the one in your apt sources)"),
    suite: str = typer.Option("bookworm", help="Debian suite for --offline"),
) -> None:
    """Build the sandbox image: online from sandbox/Dockerfile, or --offline with debootstrap."""
    from sdpo_ttt.sandbox.image import build_offline, build_online

    out = Console()
    log = lambda m: out.print(m, highlight=False, markup=False)  # noqa: E731
    image_id = build_offline(tag, mirror=mirror or None, suite=suite, log=log) if offline else build_online(tag, log=log)
    out.print(f"[green]built[/] {tag} ({image_id[:19]})")


@sandbox_app.command("check")
def check(
    sandbox: SandboxKind = typer.Option(SandboxKind.auto, help="which backend to check"),
    image: str = typer.Option("sdpo-ttt-sandbox:latest", help="image for the Docker backend"),
) -> None:
    """Say which backend is active and run a smoke test (a correct, a wrong and a looping program)."""
    from sdpo_ttt.sandbox import open_sandbox
    from sdpo_ttt.sandbox.smoke import smoke_test

    out, err = Console(), Console(stderr=True)
    with open_sandbox(sandbox.value, workers=2, image=image,
                      announce=lambda m: err.print(f"[yellow]{m}[/]", highlight=False)) as sb:
        out.print(f"backend: [bold]{sb.name}[/] ({getattr(sb, 'isolation', '')})", highlight=False)
        results = smoke_test(sb)
        proc = getattr(sb, "proc", None)  # the Docker sandbox, once a runner said (box/prochide.py)
    ok = True
    for name, want, got in results:
        good = want == got
        ok &= good
        out.print(f"  {'[green]ok[/]' if good else '[red]FAIL[/]'}  {name}: expected {want}, got {got}")
    if proc is not None:
        state = "[green]hidden[/]" if proc["hidden"] else "[yellow]NOT hidden[/]"
        out.print(f"  /proc: {state} from attempts ({escape(proc['detail'])})", highlight=False)
    out.print("[green]sandbox works[/]" if ok else "[red]sandbox smoke test failed[/]")
    raise typer.Exit(0 if ok else 1)


@sandbox_app.command("reap")
def reap() -> None:
    """Remove sandbox containers whose owner process is gone (normally done at every start-up)."""
    from sdpo_ttt.sandbox.docker_container import docker_status, reap_stale

    why = docker_status()
    if why is not None and "daemon" in why:
        Console().print(f"nothing to reap: {why}")
        return
    import docker

    removed = reap_stale(docker.from_env())
    Console().print(f"removed {len(removed)} stale container(s)" + (": " + ", ".join(removed) if removed else ""))


def register(app: typer.Typer) -> None:
    """Add the `sandbox` group to the app."""
    app.add_typer(sandbox_app, name="sandbox")
