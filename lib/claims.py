"""The original report's claims (STUDY.md §5), each with measured evidence and a computed verdict."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from scipy.stats import spearmanr

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass(frozen=True)
class Thresholds:
    """What 'increases', 'low' and 'high' mean in the claims (stated in the report's table)."""

    alpha: float = 0.05  # significance of a Spearman trend
    low_cosine: float = 0.5  # claim 2: 'low' cosine similarity
    high_cosine: float = 0.9  # claim 3: 'high' cosine similarity
    low_relative_mse: float = 0.1  # claim 3: 'low' MSE, relative to the reference's mean square


def trend(series: pd.DataFrame, alpha: float) -> tuple[str, str]:
    """Verdict and evidence for 'cosine increases with ε' on one model × reference series."""
    series = series.sort_values("eps")
    first, last = series.iloc[0], series.iloc[-1]
    text = f"cos {first.cosine:.3f} at ε={first.eps:g} → {last.cosine:.3f} at ε={last.eps:g}"
    if len(series) < 3 or series.cosine.nunique() == 1:
        return INCONCLUSIVE, text + " (too few distinct points for a trend)"
    rho, p = spearmanr(series.eps, series.cosine)
    text += f"; Spearman ρ={rho:+.2f}, " + ("p<0.001" if p < 1e-3 else f"p={p:.2g}")
    if p < alpha:
        return (HOLDS if rho > 0 else FAILS), text
    return INCONCLUSIVE, text


def combine(verdicts: list[str]) -> str:
    """A claim about several series holds only if each part holds; one contradicted part fails it."""
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    return FAILS if FAILS in verdicts else INCONCLUSIVE


def between(values: pd.Series, low: float, high: float) -> str:
    """HOLDS when every value is on the claimed side, FAILS when none is, else INCONCLUSIVE."""
    inside = values.between(low, high)
    return HOLDS if inside.all() else FAILS if not inside.any() else INCONCLUSIVE


def check(averages: pd.DataFrame, t: Thresholds = Thresholds(), models: tuple[str, str] = ("A-200d", "B-200d"),
          extension: tuple[str, str] | None = None, samples: pd.DataFrame | None = None) -> pd.DataFrame:
    """The claims table from class-averaged metrics (columns model, reference, eps, cosine, relative_mse).

    `extension`, when given, is (verdict, evidence) on claim 4 from a model trained with adversarial centers.
    `samples` (model, reference, eps, sample_cosine), when given, adds the sample-level trend to claim 1's
    evidence as context; the verdict is about centers, as the claim is.
    """
    a, b = models
    series = lambda model, ref: averages[(averages.model == model) & (averages.reference == ref)]
    rows = []

    parts = [(f"{m}: vs feature means", *trend(series(m, "feature_mean"), t.alpha)) for m in (a, b)]
    parts.append((f"{b}: vs center-loss centers", *trend(series(b, "center"), t.alpha)))
    evidence = "; ".join(f"{name}: {text}" for name, _, text in parts)
    if samples is not None:
        per_sample = samples.rename(columns={"sample_cosine": "cosine"})
        evidence += ". Context, sample level (mean over samples of cos to the own class's feature mean): " + "; ".join(
            f"{m}: {trend(per_sample[(per_sample.model == m) & (per_sample.reference == 'feature_mean')], t.alpha)[1]}"
            for m in (a, b))
    rows.append({"claim": 1, "statement": "Increasing ε increases the cosine similarity of adversarial centers "
                 "to feature means (A and B) and to center-loss centers (B).",
                 "evidence": evidence,
                 "verdict": combine([v for _, v, _ in parts])})

    weight = averages[averages.reference == "weight"]
    parts = [between(series(m, "weight").cosine, -1.0, t.low_cosine) for m in (a, b)]
    rows.append({"claim": 2, "statement": f"Adversarial centers have low cosine similarity (< {t.low_cosine}) "
                 "to the class weight vectors.",
                 "evidence": "; ".join(f"{m}: cos in [{series(m, 'weight').cosine.min():.3f}, "
                                       f"{series(m, 'weight').cosine.max():.3f}] over ε" for m in (a, b)),
                 "verdict": combine(parts) if len(weight) else INCONCLUSIVE})

    centers = series(b, "center")
    parts = [between(centers.cosine, t.high_cosine, 1.0), between(centers.relative_mse, 0.0, t.low_relative_mse)]
    rows.append({"claim": 3, "statement": f"In model B, adversarial centers are highly similar to the center-loss "
                 f"centers (cosine ≥ {t.high_cosine}, MSE ≤ {t.low_relative_mse} × the centers' mean square).",
                 "evidence": f"{b}: cos in [{centers.cosine.min():.3f}, {centers.cosine.max():.3f}], relative MSE in "
                             f"[{centers.relative_mse.min():.3f}, {centers.relative_mse.max():.3f}] over ε",
                 "verdict": combine(parts)})

    rows.append({"claim": 4, "statement": "Inverse adversaries can replace classic centers in center loss, "
                 "which can increase robustness while keeping separability.",
                 "evidence": extension[1] if extension else "Stated, not tested, in the original; no model trained "
                                                            "with adversarial centers is part of this reproduction.",
                 "verdict": extension[0] if extension else INCONCLUSIVE})
    return pd.DataFrame(rows)
