"""Text of the report computed from this run's numbers: header, interpretations, links."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from IPython.display import HTML
from scipy.stats import t as student_t

from lib import ROOT
from lib.analysis.claims import (AUTOATTACK, Thresholds, best_and_last, collapsed_seeds, count_text, final_attack,
                                 masking_findings, pgd_attack, stage_table)
from lib.analysis.markup import slug
from lib.analysis.tables import class_average, class_average_per_seed
from lib.core.autoattack import FOLLOWUP
from lib.core.centers import compactness, cosine
from lib.core.masking import RESCALED_MARGIN
from lib.core.robustness import ALL, EVALUATIONS


def header(study: dict, products: list[dict], wall_seconds: float | None = None,
           step_seconds: dict[str, float] | None = None, kinds: dict[str, str] | None = None) -> str:
    """Markdown header: profile, parameters, commit(s), package versions, device(s), compute time.

    With `step_seconds` (seconds each finished step's notebook ran, by task name) and `kinds` (task name → what a
    person calls it: 'trainings', ...), the compute time is the steps' and is broken down by kind; otherwise it is
    the compute recorded in `products`."""
    prov = [p["provenance"] for p in products]
    commits = sorted({p["commit"] for p in prov})
    devices = sorted({p["device"] + (f", {p['cpu_kernels']} kernels" if "cpu_kernels" in p else "") for p in prov})
    packages = {**prov[0]["packages"], "python": prov[0]["python"]} if prov else {}
    precisions = sorted({p.get("precision", "fp32") for p in prov})
    params = ", ".join(f"{k}={v}" for k, v in study.items() if k != "profile")
    lines = [
        f"**Profile:** `{study['profile']}`  ",
        f"**Parameters:** {params}  ",
        f"**Code commit:** {', '.join(f'`{c}`' for c in commits)}"
        + (" (a product is reused across commits only while the code it depends on is unchanged: its folder is keyed "
           "by that code)  " if len(commits) > 1 else "  "),
        f"**Packages:** {', '.join(f'{k} {v}' for k, v in packages.items())}  ",
        f"**Device:** {'; '.join(devices)}  ",
        f"**Precision of the training and PGD steps:** {', '.join(precisions)} (features and metrics in fp32)  ",
    ]
    if step_seconds:
        lines.append(f"**Compute time of the steps:** {hours(sum(step_seconds.values()))} before this report's own "
                     f"step: {step_compute(step_seconds, kinds or {})}")
    else:
        lines.append(f"**Compute time of the products:** {sum(p.get('compute_seconds', 0.0) for p in products) / 60:.1f} min")
    if wall_seconds is not None:
        lines[-1] += f"; wall time of the pipeline: {hours(wall_seconds)}"
    return "\n".join(lines)


def provenance(header_markdown: str) -> HTML:
    """The header (profile, parameters, commits, packages, device, compute) folded behind one line: the full record
    is a click away and the answers stay on the first screen. (Its two kinds of markup, **bold** and `code`, are
    made HTML here: Markdown inside an HTML block is not rendered.)"""
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", header_markdown))
    lines = "<br>".join(line.rstrip() for line in html.splitlines())
    return HTML(f"<details><summary>How these numbers were made: parameters, code, packages, device, compute</summary>"
                f"<p>{lines}</p></details>")


def how_made(profile: str, seeds: tuple[int, ...], products: list[dict], wall_seconds: float | None = None) -> str:
    """One line on how the numbers were made: profile, seeds (the study's), precision, device, wall time."""
    prov = [p["provenance"] for p in products]
    devices = sorted({p["device"] for p in prov})
    precisions = sorted({p.get("precision", "fp32") for p in prov})
    line = f"Profile {profile}, seed(s) {', '.join(map(str, seeds))}, {'/'.join(precisions)}, {'; '.join(devices)}"
    return line + (f", {hours(wall_seconds)} wall." if wall_seconds is not None else ".")


VERDICT_COLOURS = {"holds": "#d8f0d8", "does not hold": "#f6d5d5", "inconclusive": "#f3ecd0"}


def verdict_badge(verdict: str) -> str:
    colour = VERDICT_COLOURS.get(verdict, "#eee")
    return f"<span class='verdict' style='background:{colour}'>{verdict}</span>"


def answers(claims_table: pd.DataFrame, sections: dict[int, str], how: str, extra: list[str] = ()) -> HTML:
    """The report's first screen: each claim's verdict with the line of numbers that decides it and a link to the
    section that shows it (`sections`: claim -> heading), the extension's further findings (`extra`), and how the
    numbers were made."""
    items = "".join(
        f"<li>{verdict_badge(r.verdict)} <b>Claim {r.claim}.</b> {r.statement} <i>{r.key}</i>"
        + (f" <a href='#{slug(sections[r.claim])}'>§</a>" if r.claim in sections else "") + "</li>"
        for r in claims_table.itertuples())
    items += "".join(f"<li>{line}</li>" for line in extra)
    return HTML(f"<div class='answers'><b>The answers</b> — the original report's claims (and this study's own, "
                f"claim 5, where it ran), each checked against this run's numbers (the full evidence: "
                f"<a href='#{slug(CLAIMS_SECTION)}'>§</a>)<ul>{items}</ul>"
                f"<small>{how}</small></div>")


CLAIMS_SECTION = "The original report's claims"
# The section that shows each claim's numbers (their headings in notebooks/08_figures and 07_extension).
CLAIM_SECTIONS = {1: "Adversarial centers vs feature means and weight vectors",
                  2: "Adversarial centers vs feature means and weight vectors",
                  3: "Model B: adversarial centers vs center-loss centers",
                  4: "Each model against B and against A, over seeds",
                  5: "Where robustness exists: adversarial training with and without inverse adversaries (claim 5)"}


def table_html(table: pd.DataFrame, caption: str) -> str:
    """A table whole as HTML (no rows cut; labels an index held become columns, a plain row number is dropped),
    under a caption that says what it shows and how it was made."""
    if not isinstance(table.index, pd.RangeIndex) or table.index.name is not None:
        table = table.reset_index()
    html = table.to_html(index=False, border=0)
    return html.replace(">", f"><caption>{caption}</caption>", 1)


def captioned(table: pd.DataFrame, caption: str) -> HTML:
    """`table_html`, for a notebook to show."""
    return HTML(table_html(table, caption))


def fold(table: pd.DataFrame, summary: str, caption: str | None = None) -> HTML:
    """A long table behind a one-line summary (`<details>`): there when wanted, not a wall on the way; whole, and
    captioned (by `summary` unless a `caption` says more)."""
    return HTML(f"<details><summary>{summary}</summary>{table_html(table, caption or summary)}</details>")


def bullets(lines: list[str]) -> str:
    """Markdown bullets, one finding each."""
    return "\n".join(f"* {line}" for line in lines)


def sentences(text: str, clauses: bool = False) -> list[str]:
    """A paragraph's sentences (split after '. ' before a capital, outside parentheses and brackets); with `clauses`,
    also at each '; ' (which is dropped)."""
    out, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        ends = (char == "." and text[i + 2:i + 3].isupper()) or (clauses and char == ";")
        if depth == 0 and ends and text[i + 1:i + 2] == " ":
            out.append(text[start:i + (char == ".")].strip())
            start = i + 2
    return [s for s in (*out, text[start:].strip()) if s]


def hours(seconds: float) -> str:
    """'42.5 min' below two hours, '5.31 h' above."""
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def step_compute(step_seconds: dict[str, float], kinds: dict[str, str]) -> str:
    """'18 trainings 5.10 h (10.2 min–52.0 min each), 1 centers 3.1 min, ...': compute per kind of step, in the
    plan's order."""
    groups: dict[str, list[float]] = {}
    for name, seconds in step_seconds.items():
        groups.setdefault(kinds.get(name, name), []).append(seconds)
    part = lambda kind, t: (f"{len(t)} {kind} {hours(sum(t))}" + (f" ({hours(min(t))}–{hours(max(t))} each)"
                                                                   if len(t) > 1 else ""))
    return ", ".join(part(kind, t) for kind, t in groups.items())


def series(averages: pd.DataFrame, model: str, reference: str) -> pd.DataFrame:
    return averages[(averages.model == model) & (averages.reference == reference)].sort_values("eps")


def describe_series(averages: pd.DataFrame, model: str, reference: str, label: str) -> str:
    """One sentence: how a class-averaged cosine moves from the smallest to the largest ε."""
    s = series(averages, model, reference)
    first, last = s.iloc[0], s.iloc[-1]
    direction = "rises" if last.cosine > first.cosine + 1e-3 else "falls" if last.cosine < first.cosine - 1e-3 else None
    peak = s.loc[s.cosine.idxmax()]
    moves = (f"{direction} from {first.cosine:.3f} at ε={first.eps:g} to {last.cosine:.3f} at ε={last.eps:g}" if direction
             else f"stays at {first.cosine:.3f} from ε={first.eps:g} to ε={last.eps:g}")
    return f"For {model}, the cosine similarity to {label} {moves} (highest {peak.cosine:.3f} at ε={peak.eps:g})."


def interpret_figure2(averages: pd.DataFrame, models: tuple[str, ...] = ("A-200d", "B-200d")) -> str:
    """Interpretation of Figure 2 from its numbers."""
    found = [describe_series(averages, m, "feature_mean", "the feature means") for m in models]
    at_zero = averages[(averages.eps == 0) & (averages.reference == "feature_mean")]
    if len(at_zero):
        found.append("At ε=0 nothing is perturbed: the adversarial centers are the clean class means of the "
                     "attacked split, so their similarity to the feature means ("
                     + ", ".join(f"{r.model}: {r.cosine:.3f}" for r in at_zero.itertuples())
                     + ") is the starting point any trend in ε moves away from.")
    found += [describe_series(averages, m, "weight", "the weight vectors") for m in models]
    gap = {m: (series(averages, m, "feature_mean").cosine.mean() - series(averages, m, "weight").cosine.mean())
           for m in models}
    closer = [m for m, g in gap.items() if g > 0]
    if closer:
        found.append(f"Averaged over ε, adversarial centers are closer in direction to the feature means than "
                     f"to the weight vectors for {', '.join(closer)} (gap "
                     + ", ".join(f"{m}: {gap[m]:+.3f}" for m in closer) + ").")
    return bullets(found)


def interpret_figure3(averages: pd.DataFrame, model: str = "B-200d", t: Thresholds = Thresholds(),
                      centers: str = "its center-loss centers") -> str:
    """Interpretation of Figure 3 from its numbers (`centers`: what the model's centers are, in words)."""
    s = series(averages, model, "center")
    high = (s.cosine >= t.high_cosine).mean()
    return bullets([describe_series(averages, model, "center", centers),
                    f"The MSE goes from {s.mse.iloc[0]:.4g} to {s.mse.iloc[-1]:.4g}, i.e. {s.relative_mse.iloc[0]:.3f} → "
                    f"{s.relative_mse.iloc[-1]:.3f} of the centers' mean square.",
                    f"The cosine is at or above {t.high_cosine} at {high:.0%} of the ε values."])


def interpret_heldout(history: pd.DataFrame, t: Thresholds = Thresholds()) -> str:
    """Interpretation of the held-out robustness curves (a row per model, seed and epoch): where each model ends and
    its best epoch (mean over seeds), and catastrophic overfitting in each seed whose held-out accuracy fell
    `overfit_drop` below its best while training went on (a mean over seeds would hide one seed's collapse)."""
    mean = history.groupby(["model", "epoch"])[["heldout_pgd", "train_acc_running"]].mean().reset_index()
    found = []
    for model, curve in mean.groupby("model"):
        best, last = best_and_last(curve)
        text = (f"{model}: {100 * last.heldout_pgd:.1f} % held-out robust accuracy after epoch {int(last.epoch)} "
                f"(best {100 * best.heldout_pgd:.1f} % at epoch {int(best.epoch)}), "
                f"{100 * last.train_acc_running:.1f} % on its own training examples")
        collapsed, n = collapsed_seeds(history, model, t)
        if collapsed:
            text += (f" — catastrophic overfitting in {len(collapsed)} of {n} seed(s): "
                     + "; ".join(f"seed {seed}: the held-out accuracy fell {100 * (top.heldout_pgd - end.heldout_pgd):.0f}"
                                 f" points from its best ({100 * top.heldout_pgd:.1f} % at epoch {int(top.epoch)}) "
                                 f"while its own training examples' rose to {100 * end.train_acc_running:.1f} %"
                                 for seed, top, end in collapsed))
        found.append(text + ".")
    return bullets(found)


def interpret_accuracy(accuracy: pd.DataFrame) -> str:
    """One sentence per model on its final test accuracy."""
    return bullets([f"{r.model} ({r.loss}) reaches {r.test_acc:.2%} test accuracy after {r.epochs} epoch(s)."
                    for r in accuracy.itertuples()])


def notebook_links(names: list[str], folder: str) -> str:
    """Markdown list linking the executed notebooks copied beside the report."""
    return "\n".join(f"- [{name}]({folder}/{name}.ipynb)" for name in names)


def figure_table(averages: pd.DataFrame, references: list[str], metric: str = "cosine") -> pd.DataFrame:
    """The numbers behind a figure: one class-averaged metric, one row per model × reference, one column per ε.

    Cosines are rounded to 3 decimals; MSEs (tiny for some models) are written at 3 significant digits, cell by cell:
    as numbers, pandas would print a whole column in scientific notation (2.490e+00) once one cell is tiny.
    """
    data = averages[averages.reference.isin(references)]
    table = data.pivot_table(index=["model", "reference"], columns="eps", values=metric)
    table.columns.name = f"{metric} at ε ="
    return table.round(3) if metric == "cosine" else table.map(lambda v: f"{v:.3g}")


def angle_summary(panel: dict) -> dict[str, float]:
    """For a 2-D model: alignment of class means with weight vectors, and class compactness."""
    return {"mean cos(μ_c, W_c)": cosine(panel["means"], panel["weights"]).mean().item(),
            "within/between scatter": compactness(panel["features"], panel["labels"]).item()}


def pick_eps(values: list[float], k: int = 3) -> list[float]:
    """k ε values spread over the grid (smallest, middle, largest)."""
    values = sorted(values)
    if len(values) <= k:
        return values
    return [values[round(i * (len(values) - 1) / (k - 1))] for i in range(k)]


def examples(eps_runs: list[dict], model: str, k: int = 3) -> dict[float, dict]:
    """The stored example digits of one model at k ε values spread over the grid."""
    chosen = pick_eps([r["eps"] for r in eps_runs], k)
    return {r["eps"]: r["models"][model]["examples"] for r in eps_runs if r["eps"] in chosen}


def evidence_lines(evidence: str) -> str:
    """Evidence as short lines: one per clause ('; ') or sentence, outside parentheses."""
    return "<br>".join(sentences(evidence, clauses=True))


def claims_html(table: pd.DataFrame) -> HTML:
    """The claims table as HTML: left-aligned text, evidence as short lines, coloured verdicts."""
    rows = "".join(
        f"<tr><td>{r.claim}</td><td>{r.statement}</td><td>{evidence_lines(r.evidence)}</td>"
        f"<td style='background:{VERDICT_COLOURS.get(r.verdict, '#fff')}'><b>{r.verdict}</b></td></tr>"
        for r in table.itertuples())
    return HTML("<table class='claims'><caption>Each claim of the original report and this study's claim 5: the "
                "numbers that decide it and the verdict the code computes from them, by the thresholds stated in it."
                "</caption><thead><tr><th>claim</th><th>statement</th><th>evidence</th>"
                f"<th>verdict</th></tr></thead><tbody>{rows}</tbody></table>")


LIKELY, REACHABLE = 0.9, 1.0  # probe: 'high-likelihood' probability, 'reachable' distance (in class spreads)


def probe_summary(probe: pd.DataFrame) -> pd.DataFrame:
    """Per model × candidate (adversarial centers per ε): class-averaged probability and distance, and
    the share of classes where the point is both likely and reachable."""
    data = probe.assign(both=(probe.probability >= LIKELY) & (probe.relative_distance <= REACHABLE),
                        eps=probe.eps.fillna(-1))
    table = data.groupby(["model", "candidate", "eps"], sort=False)[["probability", "relative_distance", "both"]].mean()
    table = table.rename(columns={"both": "likely & reachable"}).reset_index()
    table["candidate"] = [c if e < 0 else f"{c} ε={e:g}" for c, e in zip(table.candidate, table.eps)]
    return table.drop(columns="eps").round(3)


ADVERSARIAL_CANDIDATE = "adversarial center ε="


def candidate_list(good: list[str], offered: list[str]) -> str:
    """The candidates in words, the adversarial centers as one item: 'feature mean, adversarial centers at every ε'
    when all of the model's ε qualify, else at the ε that do."""
    eps = [c.removeprefix(ADVERSARIAL_CANDIDATE) for c in good if c.startswith(ADVERSARIAL_CANDIDATE)]
    every = len(eps) == sum(c.startswith(ADVERSARIAL_CANDIDATE) for c in offered) > 1
    items = [c for c in good if not c.startswith(ADVERSARIAL_CANDIDATE)]
    if eps:
        items.append("adversarial centers at every ε" if every else f"adversarial centers at ε={', '.join(eps)}")
    return ", ".join(items)


def interpret_probe(summary: pd.DataFrame) -> str:
    """Per model: which candidates are likely (p ≥ 0.9) and reachable (within one class spread) for most classes."""
    found = []
    for model, d in summary.groupby("model", sort=False):
        good = d[d["likely & reachable"] >= 0.5]
        far = d.loc[d.relative_distance.idxmax()]
        listed = candidate_list(list(good.candidate), list(d.candidate))
        found.append((f"{model}: likely and reachable for most classes — {listed}" if listed else
                      f"{model}: no candidate is likely and reachable for most classes")
                     + f"; farthest from real features: {far.candidate} ({far.relative_distance:.2f} spreads).")
    return bullets(found) + (f"\n\n(Likely: probability ≥ {LIKELY}; reachable: nearest real feature within "
                             f"{REACHABLE:g} class spread; every number is in the folded table.)")


def sweep_pivot(sweep: pd.DataFrame, eps: float) -> pd.DataFrame:
    """The numbers behind the sweep figure: cosine per reference (rows) and model family × dimension (columns)."""
    data = sweep[(sweep.eps == eps) | sweep.eps.isna()]
    table = data.pivot_table(index="reference", columns=["loss", "feature_dim"], values="cosine")
    return table.round(3)


def interpret_sweep(sweep: pd.DataFrame) -> str:
    """Does the mean/weight mismatch grow with the feature dimension? Read off the clean alignment."""
    clean = sweep[sweep.reference == "mean_vs_weight"].sort_values("feature_dim")
    found = []
    for loss, d in clean.groupby("loss"):
        values = ", ".join(f"{r.cosine:.3f} ({r.feature_dim}-d)" for r in d.itertuples())
        diffs = d.cosine.diff().dropna()
        shape = ("falls at every step: the mismatch grows with the dimension" if (diffs < 0).all() else
                 "rises at every step: the mismatch shrinks with the dimension" if (diffs > 0).all() else
                 "is not monotone in the dimension")
        found.append(f"Model {loss}: cos(feature mean, weight vector) is {values}; it {shape}.")
    return bullets(found)


def metric_label(metric: str) -> str:
    """'clean', 'PGD ε=0.1', 'AutoAttack ε=0.1' or 'compactness' for a column of the evaluation table."""
    attack = "AutoAttack" if metric.startswith(AUTOATTACK) else "PGD"
    return {"clean_acc": "clean", "compactness": "compactness"}.get(metric, f"{attack} ε={metric.split('@')[-1]}")


def claim_rows(contrast: pd.DataFrame, pairs: list[tuple[str, str]], evaluation: pd.DataFrame) -> pd.DataFrame:
    """The contrast rows a robustness claim decides on, in order: for each (model, baseline) its clean accuracy and
    its accuracies under the deciding attack (AutoAttack where measured, else PGD) at each ε."""
    prefix = AUTOATTACK if any(c.startswith(AUTOATTACK) for c in evaluation.columns) else "robust_acc@"
    keep = lambda r: r.metric == "clean_acc" or r.metric.startswith(prefix)
    found = [contrast[(contrast.model == m) & (contrast.baseline == b)] for m, b in pairs]
    return pd.concat([rows[rows.apply(keep, axis=1)] for rows in found], ignore_index=True)


def contrast_labels(rows: pd.DataFrame) -> list[str]:
    """A forest plot's row names: 'C − B, AutoAttack ε=0.1' (* where a collapsed seed was left out)."""
    return [f"{m.split('-')[0]} − {b.split('-')[0]}, {metric_label(metric)}" + (" *" if isinstance(c, str) and c else "")
            for m, b, metric, c in zip(rows.model, rows.baseline, rows.metric, rows.collapsed)]


def effect_points(contrast: pd.DataFrame) -> str:
    """The effect claims.contrasts decided against, in percentage points, as the text writes it ('1')."""
    return f"{100 * contrast.effect.iloc[0]:g}"


def contrast_table(contrast: pd.DataFrame) -> pd.DataFrame:
    """claims.contrasts for reading, one row per pair × metric: accuracies in percentage points, compactness in its
    own units (within ÷ between scatter); the pooled difference with its interval, each seed's paired difference, the
    seeds left out for a collapsed training, and what would decide a difference of the effect size."""
    def show(value: float, metric: str) -> str:
        if pd.isna(value):
            return "—"
        return f"{value:+.4f}" if metric == "compactness" else f"{100 * value:+.2f} pp"

    pp = effect_points(contrast)
    def count(n, metric: str, seeds: int, beyond: str) -> str:
        if metric == "compactness":
            return ""
        return ("—" if seeds < 2 else beyond) if pd.isna(n) else f"{int(n)}"

    return pd.DataFrame({
        "comparison": [f"{m.split('-')[0]} − {b.split('-')[0]}" for m, b in zip(contrast.model, contrast.baseline)],
        "metric": contrast.metric.map(metric_label),
        "difference": [show(v, m) for v, m in zip(contrast.difference, contrast.metric)],
        "95 % interval": [f"[{show(lo, m)}, {show(hi, m)}]" if not pd.isna(lo) else "— (one seed)"
                          for lo, hi, m in zip(contrast.low, contrast.high, contrast.metric)],
        "each seed": contrast.per_seed,  # points for accuracies, compactness units for compactness
        "excludes 0": contrast.decided.map({True: "yes", False: "no"}),
        f"within ±{pp} pp": ["" if m == "compactness" else "yes" if b else "no"
                         for b, m in zip(contrast.bounded, contrast.metric)],
        f"seeds for {pp} pp": [count(n, m, k, "> 1000") for n, k, m in
                               zip(contrast.seeds_for_effect, contrast.seeds, contrast.metric)],
        f"images per seed for {pp} pp": [count(n, m, k, "none: the seeds differ") for n, k, m in
                                        zip(contrast.images_for_effect, contrast.seeds, contrast.metric)],
        "left out": contrast.collapsed.fillna(""),
    })


def hours_per_seed(comparison: pd.DataFrame, epochs: int, step_seconds: dict[str, float] | None = None,
                   seed_of: dict[str, int | None] | None = None, extra_seeds: tuple[int, ...] = ()) -> tuple[float, str]:
    """Compute of one more seed in hours, and what it counts: with `step_seconds` (by task name) and `seed_of`
    (task name → its seed), every step of this run's extra seeds (trainings, ε runs, evaluation), averaged over
    them; otherwise the compared models' trainings alone, at this run's seconds per epoch."""
    timed = [[v for name, v in (step_seconds or {}).items() if (seed_of or {}).get(name) == seed] for seed in extra_seeds]
    if timed and all(timed):
        return sum(map(sum, timed)) / len(timed) / 3600, "all of a seed's steps, as this run's extra seeds took them"
    seconds = comparison.groupby("model").epoch_seconds.mean().sum() * epochs
    return float(seconds / 3600), "the trainings alone, at this run's seconds per epoch"


def interpret_contrasts(contrast: pd.DataFrame, new: tuple[str, ...] = ("C-200d", "D-200d"),
                        cost: tuple[float, str] | None = None, parallel: int = 2, budget_hours: float = 2.0) -> str:
    """`contrast_findings` as bullets, a finding each."""
    return bullets(sentences(contrast_findings(contrast, new, cost, parallel, budget_hours)))


def contrast_findings(contrast: pd.DataFrame, new: tuple[str, ...] = ("C-200d", "D-200d"),
                      cost: tuple[float, str] | None = None, parallel: int = 2, budget_hours: float = 2.0) -> str:
    """Which differences of the inverse-adversary models the seeds decide (interval excludes 0), which they bound
    (interval within ±effect: no difference that large either way), how many seeds the rest would need and,
    given the `cost` of a seed (`hours_per_seed`), whether the fewest of them fit in `budget_hours` of wall time
    with `parallel` steps at once (the budget issue 19 set for more seeds)."""
    ours = contrast[contrast.model.isin(new)]
    if ours.empty:
        return "No model trained towards inverse adversaries is in this run."
    seeds = int(ours.seeds.min())
    name = lambda r: f"{r.model.split('-')[0]} − {r.baseline.split('-')[0]} ({metric_label(r.metric)})"
    pp = effect_points(contrast)
    decided = [f"{name(r)} {r.difference:+.4f}" if r.metric == "compactness" else
               f"{name(r)} {100 * r.difference:+.2f} pp" for r in ours.itertuples() if r.decided]
    open_ = ours[~ours.decided & (ours.metric != "compactness")]
    text = f"Over {seeds} seed(s), the 95 % interval excludes 0 for " + (
        ", ".join(decided) if decided else "none of the differences of C and D") + "."
    bounded, wide = open_[open_.bounded], open_[~open_.bounded]
    if not bounded.empty:
        text += (f" It lies within ±{pp} pp, so the seeds rule out a difference of {pp} pp or more either way, for "
                 + ", ".join(name(r) for r in bounded.itertuples()) + ".")
    if wide.empty:
        return text
    needed = wide.seeds_for_effect.dropna()
    text += f" The other {len(wide)} accuracy differences cannot tell a gain from a loss at this many seeds"
    if needed.empty:
        unknown = "with one seed there is no seed spread" if seeds < 2 else "the measured spread is too large"
        return text + f"; {unknown} to estimate how many would decide a {pp}-point difference."
    text += (f"; deciding a {pp}-point difference would take {int(needed.min())}–{int(needed.max())} seeds per model "
             f"at the measured seed spread (80 % power)")
    if len(needed) < len(wide):
        text += f", and more than 1000 for {len(wide) - len(needed)} of them"
    if cost is None:
        return text + "."
    per_seed, counted = cost
    fewest = int(needed.min())
    more = max(fewest - seeds, 1)  # an interval can be wider than the spread predicts; then one more seed at least
    wall = more * per_seed / parallel
    fits = "within" if wall <= budget_hours else "beyond"
    start = f"The fewest, {fewest}, means {more} more seed(s)" if fewest > seeds else \
        f"The fewest, {fewest}, is no more than this run has (its interval is wider than the spread predicts): 1 more seed"
    return text + (f". {start}: ≈ {more * per_seed:.1f} h of compute ({counted}), ≈ {wall:.1f} h of wall time with "
                   f"{parallel} steps at once — {fits} the {budget_hours:g} h this study budgets for more seeds.")


def attack_table(check: pd.DataFrame) -> pd.DataFrame:
    """The attack check for reading: accuracy in % per model and attack (rows), one column per ε."""
    table = check.assign(accuracy=100 * check.accuracy).pivot_table(index=["model", "attack"], columns="eps",
                                                                     values="accuracy", sort=False)
    return table.rename(columns=lambda e: f"ε={e:g}").round(1)


def interpret_attack_check(check: pd.DataFrame, source: str) -> str:
    """How much the stronger attacks take beyond the evaluation's PGD, and whether adversaries transferred from
    `source` beat a model's own white-box attacks (the sign of masked gradients)."""
    transfer = f"transferred from {source}"
    white_box = check[~check.attack.isin([ALL, transfer])]
    evaluation = white_box[white_box.attack.str.endswith(EVALUATIONS)].set_index(["model", "eps"]).accuracy
    worst = check[check.attack == ALL].set_index(["model", "eps"]).accuracy
    drop = (evaluation - worst).sort_values()
    (model, eps), most = drop.index[-1], drop.iloc[-1]
    text = (f"On {int(check.samples.iloc[0])} test images, all attacks together take at most {100 * most:.1f} pp "
            f"more than the evaluation's PGD ({model} at ε={eps:g}).")
    best_white = white_box.groupby(["model", "eps"]).accuracy.min()
    moved = check[(check.attack == transfer) & (check.model != source)].set_index(["model", "eps"]).accuracy
    masked = [f"{m} at ε={e:g} ({100 * a:.1f} % vs {100 * best_white[m, e]:.1f} %)"
              for (m, e), a in moved.items() if a < best_white[m, e]]
    if masked:
        return bullets([text, "Adversaries made on " + source + " and transferred beat the model's own white-box attacks "
                              "for " + ", ".join(masked) + ": a sign of masked gradients; trust the 'all attacks' row, "
                              "not the evaluation's PGD."])
    # A transfer test can only reveal masking, never rule it out: AutoAttack's stages (its own section) decide.
    return bullets([text, f"No model falls further to adversaries transferred from {source} than to its own white-box "
                          "attacks: this test finds no masked gradients, which does not rule them out (AutoAttack "
                          "decides)."])


def autoattack_table(autoattack: pd.DataFrame) -> pd.DataFrame:
    """AutoAttack stage by stage for reading: accuracy in % (mean over seeds) per model and ε (rows), one column per
    attack in the order they ran, each counting only the images every attack before it left robust."""
    table = stage_table(autoattack).set_index(["model", "eps"])
    attacks = [c for c in table.columns if c != "seeds"]
    shown = (100 * table[attacks]).round(1)
    shown.index = shown.index.set_levels([f"ε={e:g}" for e in shown.index.levels[1]], level=1)
    return shown


def images_text(autoattack: pd.DataFrame) -> str:
    """The numbers of first test images AutoAttack's rows ran on, e.g. '250, 750 or 1,000' (they differ by model,
    and by ε where a claim hinges)."""
    return count_text(autoattack.samples)


def interpret_autoattack(autoattack: pd.DataFrame, t: Thresholds = Thresholds()) -> str:
    """What each AutoAttack stage found beyond the evaluation's PGD, and where the drop is masking: large and taken
    mostly by the gradient stages (claims.masking_findings)."""
    found = masking_findings(autoattack, t)
    pgd, final = pgd_attack(autoattack), final_attack(autoattack)
    images, seeds = images_text(autoattack), int(found.seeds.max())
    later = "FAB-T, Square and the follow-up" if final == FOLLOWUP else "FAB-T and Square"
    point = lambda v: f"{100 * v:.1f}"
    text = (f"On the first {images} test images (mean over {seeds} seed(s)), AutoAttack takes up to "
            f"{point(found['drop'].max())} points beyond {pgd}; {later} add at most "
            f"{point((found['APGD-T'] - found[final]).max())} points after the gradient stages.")
    masked = found[found.masked]
    if masked.empty:
        return bullets([text, f"Nowhere does AutoAttack take {point(t.masking_drop)} points or more beyond {pgd} mostly "
                              "with its gradient stages: no sign of masked gradients."])
    lines = [f"{r.model} at ε={r.eps:g}: {point(r[pgd])} % → {point(r[final])} % (−{point(r['drop'])} points, "
             f"{point(r.gradient)} of them at APGD-CE/APGD-T)" for _, r in masked.iterrows()]
    return bullets([text, f"Masked gradients — {pgd} overstates robustness by {point(t.masking_drop)} points or more, "
                          "and the same kind of attack with an adaptive step and a scale-free loss takes most of it:"]) \
        + "\n" + "\n".join(f"    * {line}" for line in lines)


def autoattack_answer(autoattack: pd.DataFrame, t: Thresholds = Thresholds()) -> str:
    """One line for the answers: the most AutoAttack takes beyond the evaluation's PGD, and whether it is masking."""
    found = masking_findings(autoattack, t)
    pgd = pgd_attack(autoattack)
    worst = found.loc[found["drop"].idxmax()]
    masked = found[found.masked]
    text = (f"<b>{pgd} against AutoAttack.</b> AutoAttack takes up to {100 * worst['drop']:.1f} points beyond {pgd} "
            f"({worst.model} at ε={worst.eps:g}: {100 * worst[pgd]:.1f} % → {100 * worst[final_attack(autoattack)]:.1f} %)")
    if masked.empty:
        return text + "; nowhere mostly at its gradient stages: no sign of masked gradients."
    return text + (f"; masked gradients for {', '.join(dict.fromkeys(masked.model))} (most of the drop at "
                   f"APGD-CE/APGD-T), so robustness is read from AutoAttack, not {pgd}.")


def interpret_masking(masking: pd.DataFrame) -> str:
    """Why PGD's cross-entropy stalls, per model (means over seeds): the logits' margin, the share of saturated
    softmax and of exactly vanishing input gradients, and PGD on logits rescaled to a median margin of
    RESCALED_MARGIN beside PGD on the raw ones (the same images, seed and steps)."""
    per_model = masking.groupby("model", sort=False).mean(numeric_only=True)
    eps = sorted(float(c.split("@")[1]) for c in masking.columns if c.startswith("pgd_rescaled@"))
    lines = []
    for model, r in per_model.iterrows():
        attacked = ", ".join(f"ε={e:g}: {100 * r[f'pgd@{e:g}']:.1f} → {100 * r[f'pgd_rescaled@{e:g}']:.1f} %"
                             for e in eps)
        lines.append(f"{model}: median logit margin {r.margin_median:.1f} (90th percentile {r.margin_p90:.1f}); "
                     f"softmax saturated for {100 * r.saturated:.1f} %, input gradient exactly 0 for "
                     f"{100 * r.vanishing:.1f} %; PGD raw → rescaled logits {attacked}")
    return (f"The logits' scale on the first {int(masking.samples.iloc[0])} test images (correctly classified ones; "
            f"means over seeds). Rescaled: divided by the model's own temperature, so that the median margin is "
            f"{RESCALED_MARGIN:g} — the same predictions, an unsaturated cross-entropy.\n\n"
            + bullets(lines))


# Figures 2–3 of an earlier reference run, to check the reproduction against itself: the class-level centers
# table the committed paper report of commit a76638a exported (fp32, before channels_last).
PREVIOUS = {"paper": ("a76638a", ROOT / "reports" / "reference" / "centers_a76638a.csv")}


def agreement(seed_centers: pd.DataFrame, previous: pd.DataFrame, models: tuple[str, ...],
              confidence: float = 0.95) -> pd.DataFrame:
    """Per model × reference × ε of figures 2–3: the previous run's class-averaged cosine beside this run's seeds
    (mean, std, min, max) and whether it lies in their prediction interval for one more seed.

    The interval is mean ± t·s·√(1 + 1/n) over n seeds: where a run that differs only by its seed falls with
    probability `confidence`. The seeds' min–max range is no such test: with 3 seeds, one more lands outside it
    half of the time ((n − 1)/(n + 1) inside)."""
    per_seed = class_average_per_seed(seed_centers[seed_centers.model.isin(models)])
    spread = per_seed.groupby(["model", "reference", "eps"]).cosine.agg(["mean", "std", "min", "max", "count"])
    spread = spread.reset_index()
    n = spread["count"]
    half = student_t.ppf(0.5 + confidence / 2, (n - 1).clip(lower=1)) * spread["std"] * np.sqrt(1 + 1 / n)
    spread["low"], spread["high"] = spread["mean"] - half, spread["mean"] + half
    earlier = class_average(previous[previous.model.isin(models)])[["model", "reference", "eps", "cosine"]]
    out = spread.merge(earlier.rename(columns={"cosine": "previous"}), on=["model", "reference", "eps"])
    out["difference"] = out["previous"] - out["mean"]
    out["within"] = (out["previous"] >= out["low"]) & (out["previous"] <= out["high"])
    out["in_range"] = (out["previous"] >= out["min"]) & (out["previous"] <= out["max"])
    return out.drop(columns="count")


def interpret_agreement(table: pd.DataFrame, label: str, seeds: int) -> str:
    """How many of the previous run's numbers lie within this run's seed spread, and the largest difference."""
    worst = table.loc[table.difference.abs().idxmax()]
    largest = (f"the largest difference from this run's mean is {worst.difference:+.4f} ({worst.model}, "
               f"{worst.reference}, ε = {worst.eps:g}; this run's seeds span {worst['min']:.4f}–{worst['max']:.4f})")
    if seeds < 2:
        return f"With one seed this run has no seed spread to compare the run of {label} with; {largest}."
    return (f"{int(table.within.sum())} of {len(table)} class-averaged cosines of figures 2–3 from the run of {label} "
            f"lie within the 95 % prediction interval of this run's {seeds} seeds (mean ± t·s·√(1 + 1/n): where a "
            f"rerun with another seed would fall); {int(table.in_range.sum())} lie within the seeds' min–max range, "
            f"which holds a rerun with probability {seeds - 1}/{seeds + 1} only; {largest}.")


def compare_with_previous(profile: str, seed_centers: pd.DataFrame, models: tuple[str, ...]) -> HTML:
    """The agreement table with the profile's earlier reference run and its summary, for the report (a sentence
    saying there is none for a profile without one)."""
    if profile not in PREVIOUS:
        return HTML(f"<p>No earlier reference run exists for the {profile} profile.</p>")
    label, path = PREVIOUS[profile]
    table = agreement(seed_centers, pd.read_csv(path), models)
    summary = f"The {len(table)} class-averaged cosines, the earlier run's beside this run's seeds"
    return HTML(f"<p>{interpret_agreement(table, label, seed_centers.seed.nunique())}</p>"
                + fold(table.round(4), summary, f"{summary}: each cosine of figures 2–3 of {label} against this run's "
                       "mean, its seeds' range and its 95 % prediction interval for one more seed.").data)
