"""How the report says things (issue #15, item 8): the conclusion sentence, 80-column terminals, one unit per
column, labelled x ticks past the budget, a legend that covers no band, '1 seed'."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from sdpo_ttt.report.estimators import Interval
from sdpo_ttt.report.analysis import analyze
from sdpo_ttt.report.conclusions import conclusions, ratio_verdict
from sdpo_ttt.report.plots import curves_figure, x_ticks
from sdpo_ttt.report.runs import collect_runs
from sdpo_ttt.report.text import blocks, print_terminal, table, table_width
from sdpo_ttt.report.words import plural, time_unit
from tests.test_report import fabricate, fabricate_problem_a


@pytest.fixture()
def clear_win(tmp_path: Path) -> Path:
    """sdpo solves at attempt 1 or 2 in every one of 8 seeds; best-of-k passes 2 of 256 pooled samples."""
    root = tmp_path / "win"
    for s in range(8):
        fabricate(root, "p", "sdpo", s, passes=[s % 2], budget=32)
    for s in range(8):
        fabricate(root, "p", "best-of-k", s, passes=[20] if s < 2 else [], stop=False, budget=32)
    return root


@pytest.fixture()
def mixed(tmp_path: Path) -> Path:
    """Problem a alone (test_report's grid without problem b)."""
    return fabricate_problem_a(tmp_path / "mixed")


def test_ratio_verdict() -> None:
    assert ratio_verdict(Interval(0.3, 0.1, 0.8)) == "fewer"
    assert ratio_verdict(Interval(2.0, 1.2, None)) == "more"  # None = not reached = above every number
    assert ratio_verdict(Interval(None, None, None)) == "more"
    assert ratio_verdict(Interval(0.4, 0.1, None)) == "inconclusive"
    assert ratio_verdict(Interval(0.9, 0.5, 1.5)) == "inconclusive"
    assert ratio_verdict(None) == "inconclusive"


def test_conclusion_states_the_leader_and_an_interval_excluding_1(clear_win: Path) -> None:
    an = analyze(collect_runs(clear_win), n_boot=300)
    [line] = conclusions(an)
    assert line.startswith("p: sdpo leads, reaching 50% discovery in 1 attempt (point estimate)")
    assert "sdpo needs fewer attempts than best-of-k to reach 50%" in line and "the 90% interval excludes 1" in line


def test_conclusion_says_inconclusive(mixed: Path) -> None:
    an = analyze(collect_runs(mixed), n_boot=300)
    [line] = conclusions(an)
    assert line.startswith("a: sdpo leads")
    assert "sdpo vs best-of-k at 50%" in line and "includes 1 — inconclusive" in line
    assert "multi-turn solved no run" in line


def test_conclusion_in_every_output(mixed: Path, tmp_path: Path) -> None:
    from sdpo_ttt.report.write import build_report

    an, _ = build_report(mixed, tmp_path / "r", n_boot=100)
    line = conclusions(an)[0]
    assert line in (tmp_path / "r" / "summary.md").read_text()
    assert "includes 1 — inconclusive" in (tmp_path / "r" / "report.html").read_text()
    import json

    assert json.loads((tmp_path / "r" / "summary.json").read_text())["conclusions"] == conclusions(an)


def test_terminal_at_80_columns_breaks_no_word(mixed: Path) -> None:
    an = analyze(collect_runs(mixed), n_boot=100)
    out = io.StringIO()
    print_terminal(Console(file=out, width=80), an)
    text = out.getvalue()
    assert max(len(ln) for ln in text.splitlines()) <= 80
    headers, rows = table(an, compact=True)
    for r in rows:  # every cell whole on one line
        for cell in r:
            assert any(cell in ln for ln in text.splitlines()), cell
    words = set(re.findall(r"[A-Za-z][A-Za-z-]+", " ".join(conclusions(an))))
    assert words <= set(re.findall(r"[A-Za-z][A-Za-z-]+", text))  # conclusions wrap between words only
    wide = io.StringIO()
    print_terminal(Console(file=wide, width=250), an)
    assert "┃ problem" in wide.getvalue()  # the table when it fits
    assert table_width(headers, rows) <= 250 < table_width(headers, rows) + 250


def test_blocks_layout() -> None:
    lines = blocks(["problem", "strategy", "solved", "mean k"], [["a", "sdpo", "2/3", ">=8.0"]])
    assert lines == ["a · sdpo", "  solved  2/3", "  mean k  >=8.0"]


def test_one_unit_per_time_column(tmp_path: Path) -> None:
    import json

    root = tmp_path / "units"
    fast = fabricate(root, "a", "sdpo", 0, passes=[2])
    slow = fabricate(root, "a", "best-of-k", 0, passes=[2], stop=False)
    for d, wall in ((fast, 89.83 * 3), (slow, 162.0 * 16)):  # 89.83 s and 2.7 min per attempt
        s = json.loads((d / "summary.json").read_text())
        s["wall_time_s"] = wall
        (d / "summary.json").write_text(json.dumps(s))
    an = analyze(collect_runs(root), n_boot=50)
    headers, rows = table(an)
    col = headers.index("time / attempt (min)")
    assert sorted(r[col] for r in rows) == ["1.50", "2.70"]
    assert all(not re.search(r"[a-z]", r[col]) for r in rows)
    assert time_unit([None, 30.0]) == ("s", 1.0) and time_unit([7200.0]) == ("h", 3600.0)


def test_one_seed_is_singular(tmp_path: Path) -> None:
    fabricate(tmp_path / "one", "a", "sdpo", 0, passes=[2])
    an = analyze(collect_runs(tmp_path / "one"), n_boot=50)
    out = io.StringIO()
    print_terminal(Console(file=out, width=200), an)
    assert "1 seed ·" in out.getvalue() and "seeds" not in out.getvalue() and "seed(s)" not in out.getvalue()
    assert plural(1, "seed") == "1 seed" and plural(3, "seed") == "3 seeds"


def test_x_ticks() -> None:
    assert x_ticks(16, 48) == [1, 2, 5, 10, 16, 48]  # 20 and 50 too close to the marks
    assert x_ticks(64, 64) == [1, 2, 5, 10, 20, 64]
    assert x_ticks(32, 256)[-4:] == [32, 50, 100, 256]  # labelled ticks past the budget (200 too close to 256)


def test_plot_ticks_labelled_past_the_budget_and_legend_outside(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    root = tmp_path / "plot"
    for s in range(3):  # best-of-k alone (no sequential run to cut it at): 48 pooled samples, a curve to 48 > budget 16
        fabricate(root, "solo", "best-of-k", s, passes=[5], stop=False)
    fig = curves_figure(analyze(collect_runs(root), n_boot=50))
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        lo, hi = ax.get_xlim()
        shown = [(t, lab.get_text()) for t, lab in zip(ax.get_xticks(), ax.get_xticklabels(), strict=True) if lo <= t <= hi]
        assert all(text for _, text in shown) and max(t for t, _ in shown) == 48 and 16 in [t for t, _ in shown]
        renderer = fig.canvas.get_renderer()
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.get_window_extent(renderer))  # beside the axes: covers no band
    finally:
        plt.close(fig)


def fabricate_costed(root: Path, problem: str, strategy: str, seed: int, *, passes: list[int], budget: int, stop: bool,
                     tokens_per_attempt: int, seconds_per_batch: float, batch: int = 4) -> Path:
    """A run directory whose attempts carry what the run had spent (run_tokens, run_wall_s), as the loop writes them."""
    import json

    d = fabricate(root, problem, strategy, seed, passes=passes, budget=budget, stop=stop)
    rows = [json.loads(line) for line in (d / "attempts.jsonl").read_text().splitlines()]
    for a in rows:
        done = (a["index"] // batch + 1) * batch  # attempts judged by the end of this one's batch
        a.update(completion_tokens=tokens_per_attempt, run_tokens=min(done, len(rows)) * tokens_per_attempt,
                 run_wall_s=(a["index"] // batch + 1) * seconds_per_batch)
    (d / "attempts.jsonl").write_text("".join(json.dumps(a) + "\n" for a in rows))
    s = json.loads((d / "summary.json").read_text())
    s.update(generated_tokens=rows[-1]["run_tokens"], wall_time_s=rows[-1]["run_wall_s"])
    (d / "summary.json").write_text(json.dumps(s))
    return d


@pytest.fixture()
def costed(tmp_path: Path) -> Path:
    """sdpo solves early but each of its attempts costs 4x the tokens and each batch 10x the seconds of best-of-k's."""
    root = tmp_path / "costed"
    for s in range(6):
        fabricate_costed(root, "p", "sdpo", s, passes=[2 + s % 3], budget=16, stop=True, tokens_per_attempt=400,
                         seconds_per_batch=100.0)
        fabricate_costed(root, "p", "best-of-k", s, passes=[12] if s < 3 else [], budget=16, stop=False,
                         tokens_per_attempt=100, seconds_per_batch=10.0)
    return root


def test_discovery_against_tokens_and_seconds(costed: Path) -> None:
    records = collect_runs(costed)
    by_attempts = analyze(records, n_boot=200)
    by_tokens = analyze(records, n_boot=200, x="tokens")
    by_seconds = analyze(records, n_boot=200, x="seconds")
    sdpo_a, sdpo_t = by_attempts.group("p", "sdpo"), by_tokens.group("p", "sdpo")
    # sdpo's discovery attempts 3, 4, 5 (two seeds each): 4 of 6 within 4 attempts, judged with the first batch
    assert sdpo_a.at_p[0.5].value == 4
    assert sdpo_t.at_p[0.5].value == pytest.approx(1600, rel=0.01)  # that batch spent 4 x 400 tokens
    # best-of-k's first passes (attempt 13 in 3 of 6 seeds, judged when 1600 tokens were spent; the other 3 spent 1600
    # unsolved): 320 bins of 5 (sdpo spent up to 2000 = 400 bins); its 96 pooled samples, cut at the 16 attempts sdpo
    # had, also end at 1600 tokens
    bok = by_tokens.group("p", "best-of-k")
    assert bok.horizon == 320 and len(bok.pooled.estimate) == 320 and bok.band.estimate[-1] == pytest.approx(0.5)
    # a win per attempt need not be a win per token or per second
    r_att = by_attempts.group("p", "sdpo").ratio[0.5].value
    r_tok = sdpo_t.ratio[0.5].value
    r_sec = by_seconds.group("p", "sdpo").ratio[0.5].value
    assert r_att < 1 and r_tok > r_att and r_sec > r_tok
    headers, _ = table(by_tokens)
    assert "tokens to 50% [90% CI]" in headers and "mean tokens to success" in headers


def test_report_gives_the_ratio_on_every_axis(costed: Path, tmp_path: Path) -> None:
    import json

    from sdpo_ttt.report.write import build_report

    an, _ = build_report(costed, tmp_path / "r", n_boot=100, x="seconds")
    [row] = an.meta["ratios_by_x"]
    assert row["strategy"] == "sdpo" and set(row) >= {"attempts", "tokens", "seconds"}
    assert row["attempts"]["value"] < 1 < row["seconds"]["value"]
    lines = conclusions(an)
    assert any(ln.startswith("p: sdpo / best-of-k to reach 50%, per unit spent: attempts ") and "· tokens " in ln
               and "· seconds " in ln for ln in lines)
    data = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert data["meta"]["x"] == "seconds" and data["meta"]["ratios_by_x"][0]["tokens"]["value"] == pytest.approx(row["tokens"]["value"])
    fig = curves_figure(an)
    try:
        assert fig.axes[0].get_xlabel() == "wall-clock seconds (log scale)"
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)


def test_runs_without_costs_say_so(mixed: Path) -> None:
    from sdpo_ttt.errors import UserError

    records = collect_runs(mixed)
    with pytest.raises(UserError, match="recorded no seconds per attempt"):
        analyze(records, x="seconds")
    with pytest.raises(UserError, match="not an axis"):
        analyze(records, x="dollars")
