"""docs/options.md is generated from the config tree (issue 21): it lists every option with its section, flag,
default and help, and the committed file is what the generator prints now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sdpo_ttt.config.docs import COMMAND, options_markdown
from sdpo_ttt.config.tree import FLAT, SECTION_TITLES, field_default_help, field_help

REPO = Path(__file__).resolve().parent.parent


def test_committed_options_doc_is_current() -> None:
    committed = (REPO / "docs" / "options.md").read_text(encoding="utf-8")
    assert committed == options_markdown(), f"docs/options.md is out of date with the config tree: regenerate it with `{COMMAND}`"


def test_every_option_is_listed_under_its_section_with_default_and_help() -> None:
    text = options_markdown()
    sections = text.split("\n## ")[1:]
    for name, (section, _) in FLAT.items():
        block = next(b for b in sections if b.startswith(SECTION_TITLES[section] + " options"))
        row = next((line for line in block.splitlines() if f"| `{name}` |" in line), None)
        assert row is not None, name
        flag = "--" + name.replace("_", "-")
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert cells[0].startswith(f"`{flag}`") and cells[2] == field_default_help(name) and cells[4] == field_help(name).replace("|", "\\|"), name
    assert "| `--track` | `track` | none | comma-separated list, each one of tensorboard, wandb |" in text
    assert "| `--stop-on-success` / `--no-stop-on-success` | `stop_on_success` | on | on/off |" in text
    assert "| `--top-p` | `top_p` | 1.0 | number > 0 and <= 1 |" in text


def test_the_module_prints_the_doc() -> None:
    r = subprocess.run([sys.executable, "-m", "sdpo_ttt.config.docs"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == options_markdown()
