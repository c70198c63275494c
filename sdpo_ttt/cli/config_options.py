"""Command-line options generated from the config tree (sdpo_ttt/config/tree.py): one `--flag` per option, with its
help, default, choices and range, so that a field added to the config appears in every command that runs runs.

    @app.command()
    @config_options(exclude=("strategy", "seed"), defaults={"budget": 64})
    def compare(problems: ..., *, options: dict[str, Any]) -> None:
        cfg = resolve_config(config_file, options, {"budget": 64})

`options` holds the flat values given on the command line (options not given are absent, so that a config file
or the command's defaults apply). Values are parsed by click (an int is an int) and validated once, by the
config, whose errors name the flag.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, Optional

import typer

from sdpo_ttt.config.tree import FLAT, SECTION_TITLES, field_default_help, field_help, field_info
from sdpo_ttt.config.fields import allowed_values, base_type, choices, flag


def _cli_type(name: str) -> Any:
    t = base_type(field_info(name).annotation)
    if t in (bool, int, float):
        return Optional[t]
    return Optional[str]  # str, a Literal (choices), or a list given comma-separated


def _is_list(name: str) -> bool:
    return getattr(base_type(field_info(name).annotation), "__origin__", None) is list


def option_help(name: str, default_help: str | None = None) -> str:
    info = field_info(name)
    parts = [field_help(name)]
    if _is_list(name):
        parts.append("Comma-separated.")
    tail = f"[default: {default_help if default_help is not None else field_default_help(name)}]"
    allowed = allowed_values(info)
    if allowed and not choices(info):
        tail += f" [range: {allowed}]"
    return " ".join(parts + [tail])


def _typer_option(name: str, default_help: str | None) -> Any:
    info = field_info(name)
    c = choices(info)
    decl = f"{flag(name)}/--no-{name.replace('_', '-')}" if base_type(info.annotation) is bool else flag(name)
    return typer.Option(
        None, decl, help=option_help(name, default_help), show_default=False,
        metavar="|".join(c) if c else ("A,B,..." if _is_list(name) else None),
        rich_help_panel=SECTION_TITLES[FLAT[name][0]] + " options",
    )


def choice_enum(name: str, class_name: str) -> type[enum.Enum]:
    """A str Enum of a config option's choices, for a command whose own option takes the same values
    (e.g. `problem validate --sandbox`): the choices are the config's, declared once."""
    c = choices(field_info(name))
    if not c:
        raise RuntimeError(f"config option {name!r} has no choices")
    return enum.Enum(class_name, {v: v for v in c}, type=str)  # type: ignore[return-value]


def _parse(name: str, value: Any) -> Any:
    if value is not None and _is_list(name):
        return [v.strip() for v in str(value).split(",") if v.strip()]
    return value


def config_options(*, exclude: Iterable[str] = (), include: Iterable[str] | None = None,
                   defaults: dict[str, Any] | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the config's options to a typer command; the command receives the given ones as `options`.

    include/exclude: flat names (default: every option); defaults: the command's own defaults, for --help
    (the command passes the same dict to `resolve_config`)."""
    wanted = set(include) if include is not None else set(FLAT)
    names = [n for n in FLAT if n in wanted and n not in set(exclude)]
    unknown = (wanted | set(exclude) | set(defaults or {})) - set(FLAT)
    if unknown:
        raise RuntimeError(f"config_options: no config option {sorted(unknown)}")
    shown = {n: field_default_help_for(n, defaults) for n in names}
    params = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=_typer_option(n, shown[n]), annotation=_cli_type(n))
              for n in names]

    def given(values: dict[str, Any]) -> dict[str, Any]:
        parsed = {n: _parse(n, v) for n, v in values.items()}
        return {k: v for k, v in parsed.items() if v is not None}

    return shared_options(params, receive_as="options", collect=given, clash="are config options; exclude them")


def shared_options(params: list[inspect.Parameter], *, receive_as: str,
                   collect: Callable[[dict[str, Any]], Any] = dict,
                   clash: str = "clash with the added options") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add keyword-only typer options to a command, after its own; the command receives their values as one
    argument, `receive_as` (collect({name: value})). The one generator of options: `config_options` uses it
    for the config tree's fields, a command group for the options its commands share (`problem import-*`)."""
    names = [p.name for p in params]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.name != receive_as]
        clashing = {p.name for p in own} & set(names)
        if clashing:
            raise RuntimeError(f"{fn.__name__}: parameters {sorted(clashing)} {clash}")

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values = {n: kwargs.pop(n, None) for n in names}
            return fn(**kwargs, **{receive_as: collect(values)})

        command.__signature__ = sig.replace(parameters=own + list(params))  # type: ignore[attr-defined]
        return command

    return decorate


def field_default_help_for(name: str, defaults: dict[str, Any] | None) -> str | None:
    if defaults and name in defaults:
        d = defaults[name]
        return ("on" if d else "off") if isinstance(d, bool) else str(d)
    return None
