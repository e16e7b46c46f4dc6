"""The numbers the README and docs/ quote from the committed run, kept in step with `reports/results/` (issue 30).

A quoted number is written between markers, `<!-- acc_A-200d -->99.28 %<!-- / -->` (the markers do not show where
the Markdown is rendered). `python -m lib.analysis.quoted` (`make docs`) rewrites every marked span from the
committed tables; tests/test_docs.py fails when a rewrite would change a file or a marker names no value, so the
text cannot drift from the tables when the study is rerun and its results are committed.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from lib import ROOT
from lib.analysis import claims
from lib.analysis.tables import class_average, without

RESULTS = ROOT / "reports" / "results" / "paper"
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")))
MARKED = re.compile(r"<!-- ([\w.@-]+) -->(.*?)<!-- / -->", re.S)
FIGURE_MODELS = ("A-200d", "B-200d")  # the claims' models (lib.pipeline.config.FIGURE_MODELS)


def percent(value: float, digits: int = 2) -> str:
    return f"{100 * value:.{digits}f} %"


def values(results: Path = RESULTS) -> dict[str, str]:
    """Every quotable number of the committed run, by name, as the documents print it."""
    models = pd.read_csv(results / "models.csv")
    centers = pd.read_csv(results / "centers.csv")
    averages = class_average(centers[centers.model.isin(FIGURE_MODELS)])
    quoted = {f"acc_{r.model}": percent(r.test_acc) for r in models.itertuples()}
    verdicts = claims.check(averages)
    quoted |= {f"claim{r.claim}": r.verdict for r in verdicts.itertuples() if r.claim < 4}
    b_centers = averages[(averages.model == "B-200d") & (averages.reference == "center")]
    quoted["claim3_cosine"] = f"{b_centers.cosine.min():.3f}–{b_centers.cosine.max():.3f}"
    quoted["claim3_relative_mse"] = f"{b_centers.relative_mse.max():.2f}"
    comparison = results / "comparison.csv"
    if comparison.exists():
        table = pd.read_csv(comparison)
        seeds = table.groupby("model").seed.nunique()
        quoted["seeds"] = str(int(seeds.max()))
        if "autoattack_samples" in table and (results / "contrasts.csv").exists():  # the extension under AutoAttack
            read = lambda name: pd.read_csv(results / name) if (results / name).exists() else None
            quoted |= robustness(table, read("contrasts.csv"), read("attack_check.csv"), read("heldout.csv"))
            if (results / "autoattack.csv").exists():
                quoted |= autoattack_stages(read("autoattack.csv"), read("heldout.csv"))
    return quoted | thresholds()


def thresholds(t: claims.Thresholds = claims.Thresholds()) -> dict[str, str]:
    """The claims' thresholds as the documents print them (`t_min_gain`: '1 point'), from claims.Thresholds."""
    points = lambda v: f"{100 * v:g} point" + ("" if 100 * v == 1 else "s")
    return {"t_alpha": percent(t.alpha, 0), "t_low_cosine": f"{t.low_cosine:g}", "t_high_cosine": f"{t.high_cosine:g}",
            "t_low_relative_mse": f"{t.low_relative_mse:g}", "t_min_gain": points(t.min_gain),
            "t_max_clean_drop": points(t.max_clean_drop), "t_masking_drop": points(t.masking_drop),
            "t_overfit_drop": points(t.overfit_drop), "t_published_clean": percent(t.published_clean, 0),
            "t_published_pgd": percent(t.published_pgd, 0)}


def autoattack_stages(autoattack: pd.DataFrame, history: pd.DataFrame | None = None) -> dict[str, str]:
    """What AutoAttack takes beyond the evaluation's PGD on the same images, mean over the seeds whose training did
    not collapse (`drop_C-200d@0.2`: '33.6 points'), the most its last two stages add after the gradient stages
    (`late_max`), each seed's accuracy after it (`aa_E-200d@0.3_seeds`: '91.6 / 91.6 / 91.6 %') and who collapsed."""
    kept = without(autoattack, claims.collapsed(history))
    found = claims.masking_findings(kept)
    points = lambda v: f"{100 * v:.1f} points"
    quoted = {f"drop_{r.model}@{r.eps:g}": points(r.drop) for r in found.itertuples()}
    quoted["late_max"] = points((found["APGD-T"] - found[claims.final_attack(autoattack)]).max())
    final = autoattack[autoattack.attack == claims.final_attack(autoattack)].sort_values("seed")
    for (model, eps), rows in final.groupby(["model", "eps"]):
        quoted[f"aa_{model}@{eps:g}_seeds"] = " / ".join(f"{100 * a:.1f}" for a in rows.accuracy) + " %"
    seeds = autoattack.groupby("model").seed.nunique()
    quoted["collapsed"] = "; ".join(f"{m} at {len(s)} of {seeds.get(m, len(s))} seeds" for m, s in
                                    claims.collapsed(history).items() if s) or "none"
    return quoted


def robustness(comparison: pd.DataFrame, contrast: pd.DataFrame, check: pd.DataFrame | None,
               history: pd.DataFrame | None = None) -> dict[str, str]:
    """Claims 4 and 5: their verdicts; each model's clean, PGD and AutoAttack accuracy (mean over the seeds whose
    training did not collapse: `clean_C-200d`, `pgd_C-200d@0.1`, `aa_C-200d@0.1`); each contrast of the contrast
    table (pooled over seeds) with its 95 % interval (`C-B_aa@0.1`)."""
    quoted = {"claim4": claims.claim4(comparison, contrast, check=check)[0]}
    if {claims.ROBUST_BASE, *claims.WITH_INVERSE} <= set(comparison.model):
        quoted["claim5"] = claims.claim5(comparison, contrast, history=history)[0]
    names = {"clean_acc": "clean"} | {c: ("pgd" if c.startswith(claims.PGD) else "aa") + "@" + c.split("@")[1]
                                      for c in comparison if c.startswith((claims.PGD, claims.AUTOATTACK))}
    means = without(comparison, claims.collapsed(history)).groupby("model")[list(names)].mean()
    for column, name in names.items():
        metric, _, eps = name.partition("@")
        quoted |= {f"{metric}_{model}" + (f"@{eps}" if eps else ""): percent(v, 1) for model, v in means[column].items()}
    for r in contrast.itertuples():
        if r.metric in names:
            name = f"{r.model[0]}-{r.baseline[0]}_{names[r.metric]}"
            quoted[name] = f"{100 * r.difference:+.1f} pp [{100 * r.low:+.1f}, {100 * r.high:+.1f}]"
            quoted[f"{name}_seeds"] = " / ".join(f"{part.split()[1]}" for part in r.per_seed.split(", ")) + " pp"
    return quoted


def refresh(text: str, quoted: dict[str, str]) -> str:
    """`text` with every marked span rewritten from `quoted`; a marker naming no value is an error."""
    unknown = sorted({name for name, _ in MARKED.findall(text)} - set(quoted))
    if unknown:
        raise KeyError(f"markers name no quotable value: {unknown}; the values: {sorted(quoted)} "
                       "(lib/analysis/quoted.py)")
    return MARKED.sub(lambda m: f"<!-- {m.group(1)} -->{quoted[m.group(1)]}<!-- / -->", text)


def main() -> None:
    """Rewrite the marked numbers of the README and docs/ from reports/results/paper/."""
    quoted = values()
    for path in DOCUMENTS:
        text = path.read_text()
        new = refresh(text, quoted)
        if new != text:
            path.write_text(new)
            print(f"updated {path.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
