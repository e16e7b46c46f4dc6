"""The original report's claims (docs/study.md §5), each with measured evidence and a computed verdict."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr, t as student_t

from lib.analysis import paired

from lib.core.autoattack import FOLLOWUP, REPORTED, STAGES
from lib.core.protocol import model_name
from lib.core.recipes import contrasts as declared_contrasts
from lib.core.robustness import ALL

PGD, AUTOATTACK = "robust_acc@", "autoattack_acc@"  # the evaluation table's robust accuracies, by attack

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"


@dataclass(frozen=True)
class Thresholds:
    """What 'increases', 'low' and 'high' mean in the claims (stated in the report's table)."""

    alpha: float = 0.05  # significance of a Spearman trend
    low_cosine: float = 0.5  # claim 2: 'low' cosine similarity
    high_cosine: float = 0.9  # claim 3: 'high' cosine similarity
    low_relative_mse: float = 0.1  # claim 3: 'low' MSE, relative to the reference's mean square
    min_gain: float = 0.01  # claim 4: a robustness gain smaller than 1 point is not 'increased robustness'
    max_clean_drop: float = 0.005  # claim 4: 'keeping separability' allows at most 0.5 points less clean accuracy
    masking_drop: float = 0.05  # AutoAttack taking 5 points or more beyond PGD means PGD overstated robustness
    overfit_drop: float = 0.2  # a held-out robust accuracy 20 points below its best epoch: catastrophic overfitting
    # the published level of adversarial training on MNIST at ε = 0.3 (Madry et al. 2018; Wong et al. 2020), which
    # the adversarially trained baseline E must reach for claim 5 to ask its question where robustness exists
    published_clean: float = 0.98
    published_pgd: float = 0.88
    published_eps: float = 0.3


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
          extension: tuple[str, str] | None = None, samples: pd.DataFrame | None = None,
          robust: tuple[str, str, str] | None = None) -> pd.DataFrame:
    """The claims table from class-averaged metrics (columns model, reference, eps, cosine, relative_mse).

    `extension`, when given, is (verdict, evidence[, key]) on claim 4 from a model trained with adversarial centers.
    Each row's `key` is the one line of numbers that decides it (the report's answers, first).
    `samples` (model, reference, eps, sample_cosine), when given, adds the sample-level trend to claim 1's
    evidence as context; the verdict is about centers, as the claim is. `robust`, when given, is (verdict, evidence,
    key) on claim 5 (`claim5`), the adversarially trained models' question.
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
    ends = lambda m, ref: series(m, ref).sort_values("eps").cosine
    rows.append({"claim": 1, "statement": "Increasing ε increases the cosine similarity of adversarial centers "
                 "to feature means (A and B) and to center-loss centers (B).",
                 "evidence": evidence,
                 "key": ", ".join(f"{label} {ends(m, ref).iloc[0]:.3f} → {ends(m, ref).iloc[-1]:.3f}"
                                  for label, m, ref in ((f"{a} to means", a, "feature_mean"),
                                                        (f"{b} to means", b, "feature_mean"),
                                                        (f"{b} to centers", b, "center")) if len(ends(m, ref)))
                        + " (cosine, smallest → largest ε)",
                 "verdict": combine([v for _, v, _ in parts])})

    weight = averages[averages.reference == "weight"]
    parts = [between(series(m, "weight").cosine, -1.0, t.low_cosine) for m in (a, b)]
    rows.append({"claim": 2, "statement": f"Adversarial centers have low cosine similarity (< {t.low_cosine}) "
                 "to the class weight vectors.",
                 "evidence": "; ".join(f"{m}: cos in [{series(m, 'weight').cosine.min():.3f}, "
                                       f"{series(m, 'weight').cosine.max():.3f}] over ε" for m in (a, b)),
                 "key": ", ".join(f"{m} ≤ {series(m, 'weight').cosine.max():.3f}" for m in (a, b)) + " (cosine to W)",
                 "verdict": combine(parts) if len(weight) else INCONCLUSIVE})

    centers = series(b, "center")
    parts = [between(centers.cosine, t.high_cosine, 1.0), between(centers.relative_mse, 0.0, t.low_relative_mse)]
    rows.append({"claim": 3, "statement": f"In model B, adversarial centers are highly similar to the center-loss "
                 f"centers (cosine ≥ {t.high_cosine}, MSE ≤ {t.low_relative_mse} × the centers' mean square).",
                 "evidence": f"{b}: cos in [{centers.cosine.min():.3f}, {centers.cosine.max():.3f}], relative MSE in "
                             f"[{centers.relative_mse.min():.3f}, {centers.relative_mse.max():.3f}] over ε",
                 "key": f"{b}: cosine ≥ {centers.cosine.min():.3f}, relative MSE ≤ {centers.relative_mse.max():.3f}",
                 "verdict": combine(parts)})

    rows.append({"claim": 4, "statement": "Inverse adversaries can replace classic centers in center loss, "
                 "which can increase robustness while keeping separability.",
                 "evidence": extension[1] if extension else "Stated, not tested, in the original; no model trained "
                                                            "with adversarial centers is part of this reproduction.",
                 "key": extension[2] if extension and len(extension) > 2 else "not tested by the reproduction",
                 "verdict": extension[0] if extension else INCONCLUSIVE})

    if robust is not None:  # a claim of this study's, not the original's (issue 32)
        rows.append({"claim": 5, "statement": CLAIM5, "evidence": robust[1], "key": robust[2], "verdict": robust[0]})
    return pd.DataFrame(rows)


def wilson(p: float, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of an accuracy `p` measured on `n` images, at the normal quantile `z`."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def score_difference(pa: float, na: int, pb: float, nb: int, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of pa − pb, two accuracies on `na` and `nb` images: Newcombe's hybrid score interval (Stat. Med.
    1998, method 10), which, unlike the normal (Wald) interval, does not shrink to a point where both are 0 or 1."""
    z = norm.ppf(0.5 + confidence / 2)
    (la, ua), (lb, ub) = wilson(pa, na, z), wilson(pb, nb, z)
    d = pa - pb
    return d - np.sqrt((pa - la) ** 2 + (ub - pb) ** 2), d + np.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)


def pp(d: tuple[float, float, float]) -> str:
    """A difference of accuracies with its interval, in points: '+1.23 pp [+0.10, +2.36]'."""
    return f"{100 * d[0]:+.2f} pp [{100 * d[1]:+.2f}, {100 * d[2]:+.2f}]"


def count_text(images: pd.Series) -> str:
    """Numbers of first test images, for reading: '250', or '250 or 1,000' where they differ (by model, and by ε where
    a claim hinges)."""
    counts = [f"{n:,}" for n in sorted(set(images.astype(int)))]
    return counts[0] if len(counts) == 1 else f"{', '.join(counts[:-1])} or {counts[-1]}"


def robust_columns(evaluation: pd.DataFrame, prefix: str) -> list[str]:
    """The evaluation table's accuracies under one attack (PGD or AUTOATTACK), one column per ε."""
    return sorted(c for c in evaluation.columns if c.startswith(prefix))


def deciding_attack(evaluation: pd.DataFrame) -> tuple[str, str]:
    """(column prefix, name) of the attack that decides robustness: AutoAttack where the table has it, else PGD."""
    return (AUTOATTACK, "AutoAttack") if robust_columns(evaluation, AUTOATTACK) else (PGD, "PGD")


def rows_of(contrast: pd.DataFrame, model: str, baseline: str, prefix: str | None = None) -> pd.DataFrame:
    """The contrast table's rows of `model` − `baseline`: its robust accuracies under one attack (prefix), or all."""
    rows = contrast[(contrast.model == model) & (contrast.baseline == baseline)]
    return rows[rows.metric.str.startswith(prefix)] if prefix else rows


def row_text(r) -> str:
    """One contrast row for the evidence: ε, the pooled difference with its interval, each seed's difference."""
    eps = r.metric.split("@")[1] if "@" in r.metric else ""
    seeds = f"; each seed: {r.per_seed}" if r.seeds > 1 else ""
    return f"{'ε=' + eps + ': ' if eps else ''}{pp((r.difference, r.low, r.high))} ({r.seeds} seed(s){seeds})"


def decide(family: pd.DataFrame, clean: pd.Series, t: Thresholds = Thresholds(), also: bool = True) -> str:
    """A claim of more robustness at no cost in clean accuracy, from the contrast rows of its `family` (every model
    and ε it looks at, Holm-corrected together) and the clean-accuracy rows of its models (`clean`). HOLDS when some
    row's corrected p-value is below α with a gain, none with a loss, every clean interval lies above −max_clean_drop
    and `also` (the caller's further condition); FAILS when some row shows a loss (corrected), every row's interval
    rules out a gain of `min_gain`, or a clean interval lies wholly below −max_clean_drop; else INCONCLUSIVE."""
    if family.empty or clean.empty:
        return INCONCLUSIVE
    adjusted = np.array(paired.holm(family.p_value.to_numpy()))
    gain = bool(np.any((adjusted < t.alpha) & (family.difference.to_numpy() > 0)))
    loss = bool(np.any((adjusted < t.alpha) & (family.difference.to_numpy() < 0)))
    ruled_out = bool(np.all(family.high.to_numpy() < t.min_gain))
    clean_kept = bool(np.all(clean.low.to_numpy() >= -t.max_clean_drop))
    clean_lost = bool(np.any(clean.high.to_numpy() < -t.max_clean_drop))
    if gain and not loss and clean_kept and also:
        return HOLDS
    return FAILS if loss or ruled_out or clean_lost else INCONCLUSIVE


def rule_text(t: Thresholds, family: str) -> str:
    """How a robustness claim is decided, for its evidence."""
    return (f" Each contrast pools the seeds' paired differences on the images both models were attacked on "
            f"(random effects, Hartung–Knapp 95 % interval; a collapsed training's seed is left out); {family} form one "
            f"family, corrected with Holm's method at α = {t.alpha:g}. Holds if some contrast shows a gain after the "
            f"correction and none a loss, with every clean-accuracy interval above −{100 * t.max_clean_drop:g} pp; "
            f"fails if one shows a loss, every interval excludes a gain of {100 * t.min_gain:g} pp, or a clean "
            f"interval lies below −{100 * t.max_clean_drop:g} pp.")


def claim4_key(contrast: pd.DataFrame, evaluation: pd.DataFrame, new: str = "C-200d", classic: str = "B-200d") -> str:
    """Claim 4's deciding numbers in one line: `new` − `classic` in robust accuracy per ε under the deciding attack,
    pooled over seeds with its 95 % interval, and in clean accuracy."""
    prefix, name = deciding_attack(evaluation)
    rows = rows_of(contrast, new, classic, prefix)
    clean = rows_of(contrast, new, classic, "clean_acc")
    points = ", ".join(f"{100 * r.difference:+.1f} pp [{100 * r.low:+.1f}, {100 * r.high:+.1f}] at "
                       f"ε={r.metric.split('@')[1]}" for r in rows.itertuples())
    return f"{new} − {classic} under {name}: {points}; clean {100 * clean.difference.iloc[0]:+.2f} pp" \
        if not clean.empty else f"{new} − {classic} under {name}: {points}"


def worst_case_gain(check: pd.DataFrame, new: str, classic: str) -> dict[float, tuple[float, float, float]]:
    """Per ε, `new` − `classic` in accuracy under all attacks of the attack check (lib.core.robustness): each
    (difference, low, high), the score interval of two accuracies on the check's test images (one seed)."""
    worst = check[check.attack == ALL]
    n = int(worst.samples.iloc[0])
    found = {}
    for e in sorted(set(worst.eps)):
        a = float(worst.loc[(worst.model == new) & (worst.eps == e), "accuracy"].mean())
        b = float(worst.loc[(worst.model == classic) & (worst.eps == e), "accuracy"].mean())
        found[e] = (a - b, *score_difference(a, n, b, n))
    return found


def claim4(evaluation: pd.DataFrame, contrast: pd.DataFrame, t: Thresholds = Thresholds(), new: str = "C-200d",
           classic: str = "B-200d", plain: str = "A-200d", variants: tuple[str, ...] = ("D-200d",),
           check: pd.DataFrame | None = None) -> tuple[str, str, str]:
    """Verdict, evidence and key line on claim 4, from the evaluation table (a row per model × seed) and the contrast
    table (`contrasts`).

    Its family is `new` − `classic` under the deciding attack (AutoAttack where measured, else PGD) at every ε, with
    `new` − `classic` in clean accuracy as the separability condition (`decide`), and `new` more compact than
    `plain`. With an attack `check` (lib.core.robustness, the first seed), 'holds' needs a gain that survives every
    attack of the check at some ε, else it is inconclusive. The verdict is C's, the model docs/study.md §6 defines for
    the claim; each of `variants` (D: per-sample targets) gets the same rule's verdict in the evidence, as context.
    """
    prefix, name = deciding_attack(evaluation)
    by = lambda model: evaluation.loc[evaluation.model == model, "compactness"].mean()
    compact = by(new) < by(plain)
    family, clean = rows_of(contrast, new, classic, prefix), rows_of(contrast, new, classic, "clean_acc")
    verdict = decide(family, clean, t, also=compact)
    evidence = f"{new} − {classic}, robust accuracy under {name}"
    if prefix == AUTOATTACK:
        evidence += f" (the first {count_text(family.images)} test images of each seed)"
    evidence += ": " + "; ".join(row_text(r) for r in family.itertuples())
    if prefix == AUTOATTACK:
        evidence += (". Under the evaluation's PGD alone (for comparison with the literature): "
                     + "; ".join(row_text(r) for r in rows_of(contrast, new, classic, PGD).itertuples()))
    evidence += (f". Clean accuracy: {'; '.join(row_text(r) for r in clean.itertuples())}. Compactness (within/between "
                 f"scatter, lower is more compact): " + ", ".join(f"{m} {by(m):.3f}" for m in
                                                                  (plain, classic, new, *variants) if m in
                                                                  set(evaluation.model)) + ".")
    evidence += rule_text(t, f"the {len(family)} radii") + f" It also needs {new} more compact than {plain}."
    if check is not None:
        worst = worst_case_gain(check, new, classic)
        survives = any(low > 0 for _, low, _ in worst.values())
        attacks = " / ".join(dict.fromkeys(check.attack[check.attack != ALL]))
        evidence += (f" Attack check (the first seed's models, {int(check.samples.iloc[0])} test images; an image "
                     f"counts only if it survives every attack: {attacks}): {new} − {classic} "
                     + "; ".join(f"ε={e:g}: {pp(d)}" for e, d in worst.items()))
        if verdict == HOLDS and not survives:
            verdict = INCONCLUSIVE
            evidence += f" — no gain survives every attack at any ε, so the gain under {name} may be masked gradients."
        elif survives:
            evidence += (f" — on this one seed {new} stays ahead under every attack of the check at some ε"
                         + (", which alone decides nothing." if verdict != HOLDS else "."))
        else:
            evidence += " — no gain survives every attack at any ε."
    for variant in [v for v in variants if v in set(evaluation.model)]:
        v_family, v_clean = rows_of(contrast, variant, classic, prefix), rows_of(contrast, variant, classic, "clean_acc")
        evidence += (f" Context, not part of the verdict: {variant} (each feature pulled towards its own inverse "
                     f"adversary) by the same rule {decide(v_family, v_clean, t)}; {variant} − {classic} under "
                     f"{name}: " + "; ".join(row_text(r) for r in v_family.itertuples()) + ".")
    return verdict, evidence, claim4_key(contrast, evaluation, new, classic)


# Claim 5 (issue 32): adversarial training alone, and with inverse adversaries used two ways.
ROBUST_BASE = "E-200d"
WITH_INVERSE = {"F-200d": "C's center loss towards adversarial centers",
                "G-200d": "Dong et al.'s alignment with the inverse adversaries' outputs"}
CLAIM5 = ("Inverse adversaries increase robustness where robustness exists: added to adversarial training, as "
          "center loss towards adversarial centers (F) or as Dong et al.'s alignment (G), they make a model more "
          "robust than adversarial training alone (E) at no cost in clean accuracy.")


def claim5(evaluation: pd.DataFrame, contrast: pd.DataFrame, t: Thresholds = Thresholds(), base: str = ROBUST_BASE,
           new: tuple[str, ...] = tuple(WITH_INVERSE), history: pd.DataFrame | None = None) -> tuple[str, str, str]:
    """Verdict, evidence and key line on claim 5: its family is each of `new` − `base` under the deciding attack at
    every ε (Holm over all of them), with each one's clean accuracy as the cost condition (`decide`); a seed in which
    a training collapsed (held-out robustness ending far below its best) is left out of that model's contrasts and
    counted, and so named in the evidence from `history` (a row per model, seed and epoch), where given. `new[0]` −
    `new[1]` (which use does more) is evidence beside it."""
    prefix, name = deciding_attack(evaluation)
    family = pd.concat([rows_of(contrast, m, base, prefix) for m in new], ignore_index=True)
    clean = pd.concat([rows_of(contrast, m, base, "clean_acc") for m in new], ignore_index=True)
    verdict = decide(family, clean, t)
    parts = []
    for m in new:
        rows = rows_of(contrast, m, base, prefix)
        text = f"{m} ({WITH_INVERSE.get(m, 'with inverse adversaries')}) − {base} under {name}: " \
               + "; ".join(row_text(r) for r in rows.itertuples())
        if prefix == AUTOATTACK:
            text += "; under PGD: " + "; ".join(row_text(r) for r in rows_of(contrast, m, base, PGD).itertuples())
        skipped = rows.collapsed.iloc[0] if len(rows) and isinstance(rows.collapsed.iloc[0], str) else ""
        parts.append(text + f"; clean: {'; '.join(row_text(r) for r in rows_of(contrast, m, base, 'clean_acc').itertuples())}"
                     + (f" ({skipped})" if skipped else ""))
    if len(new) == 2:
        parts.append(f"{new[0]} − {new[1]} under {name}: "
                     + "; ".join(row_text(r) for r in rows_of(contrast, new[0], new[1], prefix).itertuples()))
    evidence = ". ".join(parts) + "." + rule_text(t, f"{' and '.join(f'{m} − {base}' for m in new)} at every radius")
    if prefix == AUTOATTACK:
        evidence += f" AutoAttack on the first {count_text(family.images)} test images of each seed."
    if history is not None:
        evidence += overfitting_note(history, [base, *new], t)
    key = "; ".join(f"{m} − {base} under {name}: " + ", ".join(
        f"{100 * r.difference:+.1f} pp [{100 * r.low:+.1f}, {100 * r.high:+.1f}] at ε={r.metric.split('@')[1]}"
        for r in rows_of(contrast, m, base, prefix).itertuples()) for m in new)
    return verdict, evidence, key


def best_and_last(curve: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """A held-out robustness curve's best epoch and its last (rows of `curve`)."""
    curve = curve.sort_values("epoch")
    return curve.loc[curve.heldout_pgd.idxmax()], curve.iloc[-1]


def collapsed_seeds(history: pd.DataFrame, model: str, t: Thresholds = Thresholds()) -> tuple[list, int]:
    """Catastrophic overfitting of `model` in the held-out curves (a row per model, seed and epoch): (seed, best
    epoch's row, last epoch's row) for each seed whose held-out accuracy ended `t.overfit_drop` or more below its
    best, and how many seeds it has. Per seed, since a mean over seeds would hide one seed's collapse."""
    seeds = [(seed, *best_and_last(c)) for seed, c in history[history.model == model].groupby("seed")]
    return [(seed, top, end) for seed, top, end in seeds if top.heldout_pgd - end.heldout_pgd >= t.overfit_drop], \
        len(seeds)


def overfitting_note(history: pd.DataFrame, models: list[str], t: Thresholds = Thresholds()) -> str:
    """A sentence naming each of `models` that overfit catastrophically in some seed, or '' if none did: the claim
    compares the last epoch's models, so a collapse is what it measures, not noise."""
    found = []
    for model in models:
        collapsed, n = collapsed_seeds(history, model, t)
        if collapsed:
            found.append(f"{model} in {len(collapsed)} of {n} seed(s) (" + "; ".join(
                f"seed {seed}: {100 * top.heldout_pgd:.0f} % at epoch {int(top.epoch)}, {100 * end.heldout_pgd:.0f} % "
                f"after epoch {int(end.epoch)}" for seed, top, end in collapsed) + ")")
    if not found:
        return ""
    return (" Catastrophic overfitting (held-out robust accuracy ending "
            f"{100 * t.overfit_drop:g} points or more below its best epoch): " + ", ".join(found)
            + "; the contrasts compare each training's last epoch, as the protocol has no early stopping.")


def published_level(evaluation: pd.DataFrame, autoattack: pd.DataFrame, t: Thresholds = Thresholds(),
                    model: str = ROBUST_BASE) -> tuple[str, str]:
    """Verdict and evidence: does `model` reach the published level of adversarial training on MNIST, clean accuracy
    ≥ `t.published_clean` and PGD accuracy ≥ `t.published_pgd` at ε = `t.published_eps`, each as a mean over seeds?
    Each seed's PGD accuracy and AutoAttack's, where measured, are evidence beside it, AutoAttack's on the images its
    rows (`autoattack`: model, eps, samples) ran on at that ε, which may be more than at the other radii."""
    rows = evaluation[evaluation.model == model]
    column = f"{PGD}{t.published_eps:g}"
    level = (f"clean ≥ {100 * t.published_clean:g} %, under the evaluation's PGD ≥ {100 * t.published_pgd:g} % at "
             f"ε = {t.published_eps:g}")
    if rows.empty or column not in rows:
        return INCONCLUSIVE, f"{model} at ε = {t.published_eps:g} was not evaluated ({level})."
    clean, robust = rows.clean_acc, rows[column]
    spread = lambda v: f"{100 * v.mean():.2f}" + (f" ± {100 * v.std():.2f}" if len(v) > 1 else "") + " %"
    verdict = HOLDS if clean.mean() >= t.published_clean and robust.mean() >= t.published_pgd else FAILS
    evidence = (f"{model} against the published level of adversarial training on MNIST ({level}): clean "
                f"{spread(clean)}, PGD {spread(robust)} over {len(rows)} seed(s)")
    if len(rows) > 1:
        evidence += " (each seed: " + ", ".join(f"{100 * v:.1f} %" for v in robust) + ")"
    aa = f"{AUTOATTACK}{t.published_eps:g}"
    if aa in rows and rows[aa].notna().all():
        at = autoattack[(autoattack.model == model) & np.isclose(autoattack.eps, t.published_eps)]
        if at.empty:
            raise ValueError(f"published_level: the evaluation has {aa} for {model} but `autoattack` has no row of it "
                             f"at ε {t.published_eps:g}; pass the AutoAttack rows the evaluation was merged with")
        evidence += f"; AutoAttack {spread(rows[aa])} on its first {count_text(at.samples)} test images"
    return verdict, evidence + "."


def stage_table(autoattack: pd.DataFrame) -> pd.DataFrame:
    """AutoAttack stage by stage (lib.pipeline.steps.autoattack's rows over models and seeds): per model × ε the mean
    over seeds of the accuracy after the evaluation's PGD and after each stage (each image counts only while it
    survives every stage before), one column per attack in the order they ran, with the number of seeds."""
    order = list(dict.fromkeys(autoattack.attack))
    mean = autoattack.pivot_table(index=["model", "eps"], columns="attack", values="accuracy", aggfunc="mean")
    seeds = autoattack.groupby(["model", "eps"]).seed.nunique().rename("seeds")
    return mean[order].join(seeds).reset_index().rename_axis(columns=None)


def pgd_attack(autoattack: pd.DataFrame) -> str:
    """The evaluation's PGD among the attacks of AutoAttack's rows (e.g. 'PGD-40'): the one that is not a stage."""
    [pgd] = [a for a in dict.fromkeys(autoattack.attack) if a not in REPORTED]
    return pgd


def final_attack(autoattack: pd.DataFrame) -> str:
    """The attack after which AutoAttack's accuracy is read: the follow-up where the rows have one (its authors' code,
    step `authors`: equal to Square where Square's check did not fire), else the last stage (the composition)."""
    return FOLLOWUP if FOLLOWUP in set(autoattack.attack) else STAGES[-1]


def masking_findings(autoattack: pd.DataFrame, t: Thresholds = Thresholds()) -> pd.DataFrame:
    """Per model × ε (means over seeds, `stage_table`): how much AutoAttack takes beyond the evaluation's PGD
    (`drop`), how much of it its gradient stages take (`gradient`: APGD-CE and APGD-T, the same kind of attack as
    PGD with an adaptive step and a scale-free loss), and `masked`: the drop is at least `masking_drop` and mostly
    theirs, so that PGD's steps, not the absence of adversaries, held the accuracy up."""
    table = stage_table(autoattack)
    pgd = pgd_attack(autoattack)
    table["drop"] = table[pgd] - table[final_attack(autoattack)]
    table["gradient"] = table[pgd] - table["APGD-T"]
    table["masked"] = (table["drop"] >= t.masking_drop) & (table["gradient"] >= table["drop"] / 2)
    return table


# The extension's comparisons (docs/study.md §6), each model against the ones its declaration names (lib.core.recipes):
# center loss against cross-entropy for scale, each model with inverse adversaries against classic center loss and
# against cross-entropy alone; among the adversarially trained models (claim 5), each use of inverse adversaries
# against adversarial training alone, and the two uses.
CONTRASTS = tuple((model_name(m, 200), model_name(b, 200)) for m, b in declared_contrasts())


def collapsed(history: pd.DataFrame | None, t: Thresholds = Thresholds()) -> dict[str, list[int]]:
    """{model: its seeds whose training collapsed} (`collapsed_seeds`) for every model in the held-out `history`."""
    if history is None or history.empty:
        return {}
    return {m: [seed for seed, _, _ in collapsed_seeds(history, m, t)[0]] for m in dict.fromkeys(history.model)}


def per_seed_text(differences: dict[int, float], compactness: bool = False) -> str:
    """Each seed's difference, in points (or compactness units): 's0 +11.3, s1 +42.1, s2 +10.0'."""
    return ", ".join(f"s{seed} {d:+.4f}" if compactness else f"s{seed} {100 * d:+.1f}" for seed, d in differences.items())


def contrasts(evaluation: pd.DataFrame, outcomes: dict[tuple[str, int], dict[str, np.ndarray]], pairs=CONTRASTS,
              skipped: dict[str, list[int]] | None = None, effect: float = 0.01,
              confidence: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pooled, per seed): one row per pair × metric, and one per pair × metric × seed.

    The accuracies (clean, under PGD and under AutoAttack at each ε) come from `outcomes`, {(model, seed): {metric:
    a boolean per image}}, the images in the same order for every model: each seed's difference is paired on the
    images both models have (lib.analysis.paired), the seeds are pooled by random effects. Compactness has one value
    per model and seed: its seeds' differences get a t-interval (none with one seed). A seed in `skipped` (a
    collapsed training, `collapsed`) is left out of its model's contrasts and named in `collapsed`. Each pooled row
    has its p-value, the variance components, whether the interval excludes 0 (`decided`) or lies within ±`effect`
    (`bounded`), and the seeds (at these images) and images (at these seeds) that would decide a difference of
    `effect` at 80 % power."""
    accuracies = ["clean_acc", *robust_columns(evaluation, PGD), *robust_columns(evaluation, AUTOATTACK)]
    present, skipped = set(evaluation.model), skipped or {}
    seeds_of = lambda model: set(evaluation.loc[evaluation.model == model, "seed"])
    rows, per_seed = [], []
    for model, baseline in (p for p in pairs if set(p) <= present):
        left_out = {m: [s for s in skipped.get(m, []) if s in seeds_of(m)] for m in (model, baseline)}
        seeds = sorted(seeds_of(model) & seeds_of(baseline) - {s for v in left_out.values() for s in v})
        note = "; ".join(f"{m} collapsed at seed(s) {', '.join(map(str, v))}: left out" for m, v in left_out.items() if v)
        base = {"model": model, "baseline": baseline, "collapsed": note, "effect": effect}
        for metric in accuracies:
            found = {}
            for seed in seeds:
                a, b = outcomes.get((model, seed), {}).get(metric), outcomes.get((baseline, seed), {}).get(metric)
                if a is None or b is None:
                    continue
                n = min(len(a), len(b))
                found[seed] = paired.paired(a[:n], b[:n])
                per_seed.append({"model": model, "baseline": baseline, "metric": metric, "seed": seed,
                                 "difference": found[seed].difference, "se": float(np.sqrt(found[seed].variance)),
                                 "images": n, "only_model": found[seed].only_a, "only_baseline": found[seed].only_b})
            if not found:
                continue
            pooled = paired.random_effects([d.difference for d in found.values()], [d.variance for d in found.values()],
                                           confidence)
            images = min(d.images for d in found.values())
            rows.append({**base, "metric": metric, "difference": pooled.estimate, "low": pooled.low,
                         "high": pooled.high, "p_value": pooled.p_value, "seeds": pooled.seeds, "images": images,
                         "per_seed": per_seed_text({s: d.difference for s, d in found.items()}),
                         "tau2": pooled.tau2, "within": pooled.within,
                         "decided": bool(pooled.low > 0 or pooled.high < 0),
                         "bounded": bool(-effect < pooled.low and pooled.high < effect),
                         "seeds_for_effect": paired.seeds_to_decide(effect, pooled.tau2, pooled.within, confidence),
                         "images_for_effect": paired.images_to_decide(effect, pooled.tau2, pooled.within, images,
                                                                      pooled.seeds, confidence)})
        compact = {s: float(evaluation.loc[(evaluation.model == model) & (evaluation.seed == s), "compactness"].iloc[0]
                            - evaluation.loc[(evaluation.model == baseline) & (evaluation.seed == s), "compactness"].iloc[0])
                   for s in seeds}
        d = np.array(list(compact.values()))
        if len(d) >= 2:  # the seeds' paired differences: a t-interval (a point where they agree exactly)
            se = d.std(ddof=1) / np.sqrt(len(d))
            half = student_t.ppf(0.5 + confidence / 2, len(d) - 1) * se
            low, high = d.mean() - half, d.mean() + half
            p_value = float(2 * student_t.sf(abs(d.mean()) / se, len(d) - 1)) if se > 0 else float(d.mean() == 0)
        else:
            low = high = p_value = np.nan
        rows.append({**base, "metric": "compactness", "difference": float(d.mean()) if len(d) else np.nan, "low": low,
                     "high": high, "p_value": p_value, "seeds": len(d), "images": np.nan,
                     "per_seed": per_seed_text(compact, compactness=True), "tau2": np.nan, "within": np.nan,
                     "decided": bool(low > 0 or high < 0), "bounded": False, "seeds_for_effect": None,
                     "images_for_effect": None})
    return pd.DataFrame(rows), pd.DataFrame(per_seed)
