"""How a configuration field is declared, and how a bad value is reported.

Every option of a run is one field of a `Section` (a pydantic model) declared with `option(...)`: its default,
its help text, the paper's symbol or reference where there is one, its range and, when it differs from the field
name, its command-line flag. `sdpo_ttt/config/tree.py` assembles the sections into one tree; the CLI options and their
`--help` are generated from these declarations (sdpo_ttt/cli/config_options.py).
"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from sdpo_ttt.errors import ConfigError


def option(default: Any = ..., help: str = "", *, paper: str | None = None, flag: str | None = None,
           default_help: str | None = None, derived: bool = False, **constraints: Any) -> Any:
    """A config field. `paper`: the paper's symbol/section for it; `flag`: its flat name (and CLI flag, with
    '_' -> '-') when it is not the field name; `default_help`: how to describe a None default in --help;
    `derived`: set from other options by the run config, so not an option of its own (no flag, not in files);
    `constraints`: pydantic's ge/gt/le/lt/default_factory."""
    extra: dict[str, Any] = {"derived": True} if derived else {}
    if paper:
        extra["paper"] = paper
    if flag:
        extra["flag"] = flag
    if default_help:
        extra["default_help"] = default_help
    if "default_factory" in constraints:
        return Field(description=help, json_schema_extra=extra or None, **constraints)
    return Field(default, description=help, json_schema_extra=extra or None, **constraints)


def field_extra(section: type[BaseModel], name: str) -> dict[str, Any]:
    extra = section.model_fields[name].json_schema_extra
    return dict(extra) if isinstance(extra, dict) else {}


def is_derived(section: type[BaseModel], name: str) -> bool:
    return bool(field_extra(section, name).get("derived"))


def flat_name(section: type[BaseModel], name: str) -> str:
    """The flat name of a field: its key in config files, config.json, --set/--grid, and (with '-') its CLI flag."""
    return str(field_extra(section, name).get("flag", name))


def flag(name: str) -> str:
    """`batch_size` -> `--batch-size`."""
    return "--" + name.replace("_", "-")


def base_type(annotation: Any) -> Any:
    """`int | None` -> int; other annotations unchanged."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def choices(info: FieldInfo) -> tuple[str, ...] | None:
    t = base_type(info.annotation)
    return tuple(str(a) for a in get_args(t)) if get_origin(t) is Literal else None


def value_range(info: FieldInfo) -> str | None:
    """'>= 1', '> 0 and <= 1' (None when unbounded)."""
    parts = []
    for m in info.metadata:
        for cls, attr, op in ((at.Ge, "ge", ">="), (at.Gt, "gt", ">"), (at.Le, "le", "<="), (at.Lt, "lt", "<")):
            if isinstance(m, cls):
                parts.append(f"{op} {getattr(m, attr)}")
    return " and ".join(parts) or None


def allowed_values(info: FieldInfo) -> str | None:
    """What a field accepts, in words, for --help and error messages."""
    c = choices(info)
    if c:
        return "one of " + ", ".join(c)
    return value_range(info)


class Section(BaseModel):
    """A group of config fields. Constructing one validates it; a bad value raises ConfigError naming the flag."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_default=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise config_error(e, type(self)) from None

    @classmethod
    def help(cls) -> dict[str, str]:
        """Field name -> help text (for docs and tests)."""
        return {name: f.description or "" for name, f in cls.model_fields.items()}


def _field_at(model: type[BaseModel], loc: tuple[Any, ...]) -> FieldInfo | None:
    current: type[BaseModel] = model
    for part in loc:
        field = current.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            return None
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            current = ann
            continue
        return field
    return None


def _located_flag(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    """The flat name of the field at `loc` (a pydantic error location) in `model`, or None if loc is not a field."""
    current: type[BaseModel] = model
    name: str | None = None
    for part in loc:
        field = current.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            break
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            current, name = ann, None
            continue
        name = flat_name(current, str(part))
        break
    return name


def config_error(e: ValidationError, model: type[BaseModel], sources: dict[str, str] | None = None) -> ConfigError:
    """One ConfigError for the first problem of a ValidationError, naming the CLI flag (and where its value came
    from, when `sources` maps flat names to 'the command line' / a file name)."""
    err = e.errors()[0]
    loc = tuple(err["loc"])
    inner = (err.get("ctx") or {}).get("error")
    if isinstance(inner, ConfigError):  # a section validated by its own constructor (pydantic calls __init__)
        name = getattr(inner, "flag_name", None)
        if sources and name in sources and sources[name] != "the command line":
            head, sep, rest = inner.message.partition(": ")
            out = ConfigError(f"{head} (set in {sources[name]}){sep}{rest}", inner.fix)
            out.flag_name = name
            return out
        return inner
    msg = str(err["msg"]).removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    if err["type"] == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        where = f" (set in {sources[key]})" if sources and key in sources and sources[key] != "the command line" else ""
        unknown = ConfigError(f"unknown option {flag(key)}{where}", "see `sdpo-ttt solve --help` for the option names")
        unknown.flag_name = key
        return unknown
    name = _located_flag(model, loc)
    if name is None:  # a check across fields: its message names the flags itself
        return ConfigError(msg, "see `sdpo-ttt solve --help`")
    where = f" (set in {sources[name]})" if sources and name in sources and sources[name] != "the command line" else ""
    value = err.get("input")
    shown = f" {value!r}" if value is not None and not isinstance(value, (dict, list)) else ""
    info = _field_at(model, loc)
    allowed = allowed_values(info) if info is not None else None
    fix = f"give {flag(name)} a value {allowed}" if allowed and not allowed.startswith("one of") else (
        f"give {flag(name)} {allowed}" if allowed else f"see `sdpo-ttt solve --help` for {flag(name)}")
    out = ConfigError(f"{flag(name)}{shown}{where}: {msg}", fix)
    out.flag_name = name
    return out
