"""docs/options.md, generated from the config tree: every option of a run with its section, flag, config-file key,
default, accepted values and help, read from the same declarations as the CLI's `--help` (sdpo_ttt/config/tree.py).

    python3 -m sdpo_ttt.config.docs > docs/options.md

tests/test_options_doc.py fails when the committed file differs from what this prints.
"""

from __future__ import annotations

from typing import Literal, get_args, get_origin

from sdpo_ttt.config.fields import base_type, choices, flag, value_range
from sdpo_ttt.config.tree import FLAT, SECTION_TITLES, SECTIONS, field_default_help, field_help, field_info

COMMAND = "python3 -m sdpo_ttt.config.docs > docs/options.md"
KINDS = {int: "integer", float: "number", str: "text"}

INTRO = f"""# Options

<!-- Generated from the config tree (sdpo_ttt/config/) by `{COMMAND}`: do not edit by hand. -->

Every run of `solve`, `compare` and `batch` is configured by one typed tree (sdpo_ttt/config/tree.py). Each option
has one name, written three ways: a command-line flag (`--batch-size 4`), a key in a config file given with
`--config` (`batch_size = 4` in TOML, `batch_size: 4` in YAML, or JSON), and a key of `--set`/`--grid` and of the
run's config.json. Values are layered: defaults < a command's own defaults < the config file < the command line.
The defaults below are `solve`'s; a command that sets its own shows them in its `--help` (e.g. `compare` runs a
smaller budget per run). A bad value stops the command before anything runs, with a message naming the flag.
"""


def flags(name: str) -> str:
    """`--stop-on-success / --no-stop-on-success` for a switch, else `--batch-size`."""
    if base_type(field_info(name).annotation) is bool:
        return f"`{flag(name)}` / `--no-{name.replace('_', '-')}`"
    return f"`{flag(name)}`"


def accepts(name: str) -> str:
    """What an option takes, in words: 'one of a, b', 'integer >= 1', 'on/off', 'comma-separated list ...'."""
    info = field_info(name)
    t = base_type(info.annotation)
    c = choices(info)
    if c:
        return "one of " + ", ".join(c)
    if t is bool:
        return "on/off"
    if get_origin(t) is list:
        (item,) = get_args(t)
        return "comma-separated list" + (", each one of " + ", ".join(map(str, get_args(item))) if get_origin(item) is Literal else "")
    rng = value_range(info)
    kind = KINDS.get(t, "text")
    return f"{kind} {rng}" if rng else kind


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def options_markdown() -> str:
    """The whole of docs/options.md: the introduction, then one table per section, in the tree's order."""
    lines = [INTRO]
    for section in (None, *SECTIONS):
        title = SECTION_TITLES[section]
        names = [n for n, (sec, _) in FLAT.items() if sec == section]
        where = "the root of the tree" if section is None else f"section `{section}`"
        lines += [f"## {title} options", "", f"In {where}.", "",
                  "| flag | config key | default | accepts | what it does |", "|---|---|---|---|---|"]
        lines += [f"| {flags(n)} | `{n}` | {_cell(field_default_help(n))} | {_cell(accepts(n))} | {_cell(field_help(n))} |" for n in names]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(options_markdown(), end="")
