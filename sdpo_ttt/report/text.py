"""The report as text: one table (header and cells) shared by the terminal, summary.md and report.html; the
notes on how to read it; the markdown and HTML pages; the terminal print-out (a compact table, or one block per
row when the terminal is too narrow)."""

from __future__ import annotations

import base64
import html
from typing import Any

from sdpo_ttt.report.analysis import Analysis, x_axis
from sdpo_ttt.report.conclusions import conclusions, lineage_lines
from sdpo_ttt.report.estimators import format_attempts, format_ratio
from sdpo_ttt.report.paired import pair_table, paired_lines
from sdpo_ttt.report.words import in_unit, pct, plural, time_unit
from sdpo_ttt.config.strategies import BASELINE


def table(analysis: Analysis, *, compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of text cells, shared by summary.md, report.html and (compact) the terminal.

    Each time column has one unit, named in its header (chosen from the column's largest value)."""
    lv = pct(analysis.level)
    per_unit, per_div = time_unit([g.wall_per_attempt_s for g in analysis.groups])
    tot_unit, tot_div = time_unit([g.wall_time_s for g in analysis.groups])
    x = x_axis(analysis)
    at = "budget" if x == "attempts" else "end"
    if compact:
        k = "k" if x == "attempts" else x
        headers = ["problem", "strategy", "solved", f"disc@{at} [{lv}]"]
        for p in analysis.ps:
            headers += [f"{k} for {pct(p)} [{lv}]", f"x best-of-k ({pct(p)})"]
        headers += [f"mean {k}", f"{per_unit}/attempt"]
    else:
        headers = ["problem", "strategy", "estimator", "runs solved", f"discovery@{at} [{lv} CI]"]
        for p in analysis.ps:
            headers += [f"{x} to {pct(p)} [{lv} CI]", f"x {BASELINE} at {pct(p)}"]
        headers += [f"mean {x} to success", f"time / attempt ({per_unit})", f"total time ({tot_unit})"]
    rows = []
    for g in analysis.groups:
        est, lo, hi = g.discovery_at_budget
        row = [g.problem_id, g.strategy]
        if not compact:
            row.append(g.estimator)
        row += [f"{g.solved_runs}/{g.runs}", f"{est:.2f} [{lo:.2f}, {hi:.2f}]" + ("" if compact or x != "attempts" else f" @{g.budget}")]
        for p in analysis.ps:
            row.append(format_attempts(g.at_p[p]))
            r = g.ratio.get(p)
            row.append("—" if r is None else format_ratio(r))
        mean = f"{g.mean_attempts:.1f}" if x == "attempts" else f"{g.mean_attempts:.0f}"
        if g.unsolved_mass > 1e-12:
            mean = f">={mean}" if compact else f">= {mean} (P(unsolved@{at}) = {g.unsolved_mass:.2f}, censored)"
        row += [mean, in_unit(g.wall_per_attempt_s, per_div)]
        if not compact:
            row.append(in_unit(g.wall_time_s, tot_div))
        rows.append(row)
    return headers, rows


def subtitle(analysis: Analysis) -> str:
    m = analysis.meta
    parts = [f"model {', '.join(m['models'])}", f"budget {', '.join(map(str, m['budgets']))}", plural(len(m['seeds']), "seed")]
    if m["batch_sizes"]:
        parts.append(f"batch {', '.join(map(str, m['batch_sizes']))}")
    parts.append(f"{pct(analysis.level)} bootstrap bands")
    return " · ".join(parts)


def print_terminal(console: Any, analysis: Analysis) -> None:
    """The compact table when it fits the terminal, else one block per row (never a word broken), then the conclusions."""
    from rich.table import Table

    headers, rows = table(analysis, compact=True)
    t = Table(title="discovery: " + ", ".join(analysis.problems.values()), header_style="bold", title_justify="left")
    for hdr in headers:
        t.add_column(hdr, no_wrap=True)
    for r in rows:
        t.add_row(*[f"[italic red]{c}[/]" if "not reached" in c else c for c in r])
    if table_width(headers, rows) <= console.width:
        console.print(t)
    else:
        for line in blocks(headers, rows):
            console.print(line, highlight=False, soft_wrap=True)
    for line in paired_lines(analysis.paired) + conclusions(analysis):
        console.print(line, highlight=False, soft_wrap=False)
    for line in lineage_lines(analysis):
        console.print("lineage " + line, highlight=False, soft_wrap=False)
    m = analysis.meta
    console.print(
        f"model {', '.join(m['models'])} · budget {', '.join(map(str, m['budgets']))} · {plural(len(m['seeds']), 'seed')} · "
        f"{pct(analysis.level)} bootstrap intervals · k = {x_axis(analysis)} to reach that discovery probability · "
        f"x best-of-k < 1: fewer {x_axis(analysis)} than best-of-k · >= : censored runs make the mean a lower bound",
        style="dim", highlight=False,
    )


def table_width(headers: list[str], rows: list[list[str]]) -> int:
    """Columns a rich box table needs to show every cell on one line: widest cell + 2 padding + 1 rule per column, + 1."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return sum(w + 3 for w in widths) + 1


def blocks(headers: list[str], rows: list[list[str]]) -> list[str]:
    """The compact table as one block per row: 'problem · strategy' then 'header  value' lines (for narrow terminals)."""
    width = max(len(h) for h in headers[2:])
    out: list[str] = []
    for r in rows:
        out.append(f"{r[0]} · {r[1]}")
        out += [f"  {h.ljust(width)}  {c}" for h, c in zip(headers[2:], r[2:], strict=True)]
    return out


PAIRED_TITLE = f"## Paired with {BASELINE} (common random numbers)"
PAIRED_NOTE = (
    f"Runs with the same problem, seed and sampling options share their random stream, so {BASELINE}'s run is a learning "
    "run's exact no-learning counterfactual: attempt i of both is the same draw until the update flips a token. "
    "'gained': the learner passed first, where the same-seed stream had failed up to that attempt; 'lost': the reverse. "
    "Differences are the learner's attempts to its first pass minus the stream's, censored at the horizon both runs "
    "were given ('>=' / '<=': one of them did not pass within it). The tests are exact: the two-sided sign test on "
    "who passed first (ties dropped) and McNemar's on who solved within the horizon."
)

NOTES = [
    "discovery@k = P(first success within k attempts), for every strategy the empirical CDF of the discovery time "
    "over seeds, censored at the budget (Kaplan–Meier). best-of-k drawn without stopping: a seed's discovery time is "
    "the index of its first passing attempt, where the run with that seed that stops at its first pass would have "
    "stopped (it draws the same stream), censored at the largest budget the other strategies on the problem had; so "
    "every ratio and every leader compares one estimator. Its pooled pass@k 1 − C(n−c,k)/C(n,k) over all n samples "
    "(lower variance, another estimator; cut at that budget, alone it runs to n) is drawn as a thin line and enters no ratio. "
    "On tokens and seconds a run that spent its budget unsolved counts as unsolved to the curve's end, so every axis "
    "ends at the same fraction solved. A leader is named only within the horizon every strategy was given; "
    "strategies tied there are named together.",
    "Bands and intervals: {level} percentile bootstrap ({n_boot} replicates, seed {seed}): seeds resampled, with the "
    "same draws for every strategy run on the same seeds of a problem, so a ratio's interval is paired by seed (runs identical to "
    "best-of-k's give 1.00x [1.00x, 1.00x]); samples resampled for the pooled pass@k. With no success at all a "
    "bootstrap band collapses to 0: it cannot see beyond the data — read such a row as 'no evidence of success', not "
    "'probability zero'.",
    "'not reached within N': the estimate never reaches that probability within the N attempts observed; it is "
    "never replaced by a number. A ratio '<r' means best-of-k did not reach it either, so r is an upper bound.",
    "x best-of-k: attempts this strategy needs divided by the attempts best-of-k needs (below 1 = fewer attempts).",
    "mean attempts to success = E[min(T, budget)]; '>=' marks a lower bound because some runs were censored "
    "(unsolved within the budget).",
]


def notes(analysis: Analysis) -> list[str]:
    return [n.format(level=pct(analysis.level), n_boot=analysis.n_boot, seed=analysis.meta["bootstrap_seed"]) for n in NOTES]


def markdown(analysis: Analysis) -> str:
    headers, rows = table(analysis)
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["# sdpo-ttt compare report", "", subtitle(analysis), "", "## Problems", ""]
    lines += [f"- `{pid}`: {title}" for pid, title in analysis.problems.items()]
    if analysis.paired:
        lines += ["", PAIRED_TITLE, "", PAIRED_NOTE, ""] + [f"- {c}" for c in paired_lines(analysis.paired)]
        ph, prows = pair_table(analysis.paired)
        lines += ["", "| " + " | ".join(map(esc, ph)) + " |", "|" + "---|" * len(ph)]
        lines += ["| " + " | ".join(map(esc, r)) + " |" for r in prows]
    lines += ["", "## Summary", "", "| " + " | ".join(map(esc, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in rows]
    lines += ["", "## Conclusion", ""] + [f"- {c}" for c in conclusions(analysis)]
    if lineages := lineage_lines(analysis):
        lines += ["", "## Lineage of discoveries", ""] + [f"- {x}" for x in lineages]
    lines += ["", "![discovery curves](curves.png)", ""]
    if len(analysis.problems) > 1:
        lines += ["![per problem](problems.png)", ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in notes(analysis)]
    if analysis.meta["unfinished_runs"]:
        lines += [f"- {analysis.meta['unfinished_runs']} run(s) not finished: counted as censored where they stopped."]
    return "\n".join(lines) + "\n"


def html_page(analysis: Analysis, images: dict[str, bytes]) -> str:
    e = html.escape
    headers, rows = table(analysis)
    img = lambda name, alt: (  # noqa: E731
        f'<img alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(images[name]).decode()}">' if name in images else ""
    )
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"nr" if "not reached" in c else ""}">{e(c)}</td>' for c in r) + "</tr>" for r in rows
    )
    problems = "".join(f"<li><code>{e(pid)}</code> — {e(title)}</li>" for pid, title in analysis.problems.items())
    how_to_read = "".join(f"<li>{e(n)}</li>" for n in notes(analysis))
    concl = "".join(f"<li>{e(c)}</li>" for c in conclusions(analysis))
    paired = ""
    if analysis.paired:
        ph, prows = pair_table(analysis.paired)
        paired = (f"<h2>{e(PAIRED_TITLE[3:])}</h2><p>{e(PAIRED_NOTE)}</p><ul>"
                  + "".join(f"<li>{e(c)}</li>" for c in paired_lines(analysis.paired)) + "</ul><table><thead><tr>"
                  + "".join(f"<th>{e(h)}</th>" for h in ph) + "</tr></thead><tbody>"
                  + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in prows) + "</tbody></table>")
    lineages = "".join(f"<li>{e(x)}</li>" for x in lineage_lines(analysis))
    lineage = f"<h2>Lineage of discoveries</h2><ul>{lineages}</ul>" if lineages else ""
    per_problem = f"<h2>Per problem</h2>{img('problems.png', 'discovery curves per problem')}" if len(analysis.problems) > 1 else ""
    titles = ", ".join(analysis.problems.values())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sdpo-ttt compare: {e(titles)}</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }}
h1 {{ font-size: 1.5em; margin-bottom: 0.2em; }} .sub {{ color: #555; margin-top: 0; }}
table {{ border-collapse: collapse; font-size: 0.85em; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }} tr:nth-child(even) td {{ background: #fafafa; }}
td.nr {{ color: #a33; font-style: italic; }}
img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
.notes li {{ margin: 0.3em 0; color: #444; font-size: 0.9em; }}
</style></head><body>
<h1>sdpo-ttt compare — {e(titles)}</h1>
<p class="sub">{e(subtitle(analysis))} · {analysis.meta['runs']} runs</p>
<h2>Problems</h2><ul>{problems}</ul>
<h2>Discovery@k</h2>{img('curves.png', 'discovery curves')}
{per_problem}
{paired}
<h2>Summary</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Conclusion</h2><ul>{concl}</ul>
{lineage}
<h2>How to read this</h2><ul class="notes">{how_to_read}</ul>
</body></html>
"""
