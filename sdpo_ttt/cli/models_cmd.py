"""`sdpo-ttt models` (list the built-ins) and `sdpo-ttt models prepare [NAME...]` (verify, convert, cache)."""

from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the `models` command group to the app."""
    models = typer.Typer(help="Built-in models: list them, or prepare (verify + convert + cache) them.", no_args_is_help=False)
    app.add_typer(models, name="models")

    @models.callback(invoke_without_command=True)
    def list_models(ctx: typer.Context) -> None:
        """List the built-in models: installed?, prepared?, size, source."""
        if ctx.invoked_subcommand is not None:
            return
        from rich.console import Console
        from rich.table import Table

        from sdpo_ttt.policy import catalog as m

        t = Table(title=f"built-in models (cache: {m.cache_root() / 'models'})")
        for col in ("name", "packages", "prepared", "size", "source"):
            t.add_column(col)
        for b in m.BUILTINS.values():
            prepared = m.is_prepared(b.name)
            t.add_row(
                b.name + (" (default)" if b.name == m.DEFAULT_MODEL else ""),
                "[green]installed[/]" if m.packages_installed(b)
                else f"[yellow]optional, not installed[/] ({b.gguf_size / 1e9:.1f} GB): {b.pip_install}" if b.on_demand
                else f"[red]missing[/]: {b.pip_install}",
                "[green]yes[/]" if prepared else "no: sdpo-ttt models prepare " + b.name,
                f"GGUF {b.gguf_size / 1e6:.0f} MB" + (f", cache {m.folder_size(m.model_dir(b.name)) / 1e6:.0f} MB" if prepared else ""),
                b.source,
            )
        console = Console()
        console.print(t)
        for b in m.BUILTINS.values():
            console.print(f"  {b.name}: {b.title}, license {b.license}", highlight=False)

    @models.command("prepare")
    def prepare(
        names: Optional[List[str]] = typer.Argument(
            None, help="built-in names (default: all whose packages are installed; the optional qwen2.5-coder-1.5b only once "
            "its packages are, see `sdpo-ttt models`)"),
        force: bool = typer.Option(False, "--force", help="convert again even if the cache has it"),
    ) -> None:
        """Verify the built-in models' weights (sha256 + GGUF header), convert them once and cache them."""
        from sdpo_ttt.errors import ModelUnavailable
        from sdpo_ttt.policy import catalog as m

        chosen = names or [n for n, b in m.BUILTINS.items() if m.packages_installed(b)]
        if not chosen:
            raise ModelUnavailable("no built-in model has its weight packages installed",
                                   " or ".join(b.pip_install for b in m.BUILTINS.values() if not b.on_demand))
        for name in chosen:
            if m.is_prepared(name) and not force:
                typer.echo(f"[{name}] already prepared in {m.model_dir(name)}")
                continue
            m.prepare(name, force=force, log=typer.echo)
