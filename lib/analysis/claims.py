"""The original report's claims (docs/study.md §5), each with measured evidence and a computed verdict."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr, t as student_t, ttest_ind

from lib.core.autoattack import STAGES
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


def difference(a: pd.Series, b: pd.Series, samples: int | None, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean of a − b with a confidence interval: Welch's over seeds when both have ≥ 2 that vary, otherwise (one
    seed, or seeds that agree exactly, e.g. all at 0 %) the score interval of two accuracies measured on `samples`
    test images each (one seed's, so that agreeing seeds do not narrow it); NaN bounds without `samples` (a quantity
    that is not an accuracy has no such fallback). A difference of accuracies lies in [−1, 1], so their Welch
    interval is cut there: with two or three seeds that disagree widely (one collapsed) it reaches past ±100 points,
    and cutting keeps its coverage."""
    diff = a.mean() - b.mean()
    if len(a) >= 2 and len(b) >= 2 and (a.std() > 0 or b.std() > 0):
        low, high = ttest_ind(a, b, equal_var=False).confidence_interval(confidence)
        if samples is not None:  # accuracies
            low, high = max(low, -1.0), min(high, 1.0)
        return diff, float(low), float(high)
    if samples is None:
        return diff, np.nan, np.nan
    low, high = score_difference(a.mean(), samples, b.mean(), samples, confidence)
    return diff, float(low), float(high)


def pp(d: tuple[float, float, float]) -> str:
    """A difference of accuracies with its interval, in points: '+1.23 pp [+0.10, +2.36]'."""
    return f"{100 * d[0]:+.2f} pp [{100 * d[1]:+.2f}, {100 * d[2]:+.2f}]"


def per_eps(diffs: dict[str, tuple[float, float, float]]) -> str:
    """Each ε's difference (robust-accuracy column -> (mean, low, high)), for the evidence."""
    return "; ".join(f"ε={c.split('@')[1]}: {pp(d)}" for c, d in diffs.items())


def key_points(diffs: dict[str, tuple[float, float, float]]) -> str:
    """Each ε's difference to one decimal, for a claim's one-line key."""
    return ", ".join(f"{100 * d[0]:+.1f} pp [{100 * d[1]:+.1f}, {100 * d[2]:+.1f}] at ε={c.split('@')[1]}"
                     for c, d in diffs.items())


def attacked_images(evaluation: pd.DataFrame, *models: str) -> int:
    """The test images AutoAttack ran on for `models` (the fewest of theirs): A–D's and E–G's counts differ."""
    return int(evaluation.loc[evaluation.model.isin(models), "autoattack_samples"].min())


def robust_columns(evaluation: pd.DataFrame, prefix: str) -> list[str]:
    """The evaluation table's accuracies under one attack (PGD or AUTOATTACK), one column per ε."""
    return sorted(c for c in evaluation.columns if c.startswith(prefix))


def replacement_test(evaluation: pd.DataFrame, samples: int, new: str, classic: str, plain: str,
                     t: Thresholds = Thresholds(), attack: str = PGD,
                     attacked: int | None = None) -> tuple[str, dict, tuple[float, float, float]]:
    """Claim 4's rule for one model trained towards inverse adversaries: verdict, its differences to the classic
    center-loss model under `attack` per ε and its clean difference (each mean, low, high; see `claim4`). `samples`
    is the test images of the clean accuracy, `attacked` those of the attack (default: the same)."""
    compact = evaluation.loc[evaluation.model == new, "compactness"].mean() < \
        evaluation.loc[evaluation.model == plain, "compactness"].mean()
    return robustness_test(evaluation, samples, new, classic, t, attack, attacked, also=compact)


def robustness_test(evaluation: pd.DataFrame, samples: int, new: str, base: str, t: Thresholds = Thresholds(),
                    attack: str = PGD, attacked: int | None = None,
                    also: bool = True) -> tuple[str, dict, tuple[float, float, float]]:
    """Is `new` more robust than `base` at no cost in clean accuracy? HOLDS when some ε's interval of the difference
    under `attack` lies above 0, none below, the clean accuracy drops by at most `max_clean_drop` and `also` (a
    further condition of the caller's) is true; FAILS when an
    interval lies below 0, every interval rules out a gain of `min_gain`, or the clean accuracy drops more;
    INCONCLUSIVE otherwise. Returns the verdict, the differences per ε and the clean difference (each mean, low,
    high). `samples` is the test images of the clean accuracy, `attacked` those of the attack (default: the same)."""
    by = lambda model, column: evaluation.loc[evaluation.model == model, column]
    attacked = samples if attacked is None else attacked
    diffs = {c: difference(by(new, c), by(base, c), attacked) for c in robust_columns(evaluation, attack)}
    clean = difference(by(new, "clean_acc"), by(base, "clean_acc"), samples)
    gain = any(low > 0 for _, low, _ in diffs.values())
    loss = any(high < 0 for _, _, high in diffs.values())
    ruled_out = all(high < t.min_gain for _, _, high in diffs.values())
    verdict = HOLDS if gain and not loss and clean[0] >= -t.max_clean_drop and also else \
        FAILS if loss or ruled_out or clean[0] < -t.max_clean_drop else INCONCLUSIVE
    return verdict, diffs, clean


def claim4_key(evaluation: pd.DataFrame, samples: int, new: str = "C-200d", classic: str = "B-200d",
               plain: str = "A-200d") -> str:
    """Claim 4's deciding numbers in one line: `new` − `classic` in robust accuracy per ε under the deciding attack
    (AutoAttack where the table has it), mean over seeds with its 95 % interval."""
    attack = AUTOATTACK if robust_columns(evaluation, AUTOATTACK) else PGD
    attacked = attacked_images(evaluation, new, classic) if attack == AUTOATTACK else samples
    _, diffs, clean = replacement_test(evaluation, samples, new, classic, plain, attack=attack, attacked=attacked)
    name = "AutoAttack" if attack == AUTOATTACK else "PGD"
    return f"{new} − {classic} under {name}: {key_points(diffs)}; clean {100 * clean[0]:+.2f} pp"


def worst_case_gain(check: pd.DataFrame, new: str, classic: str) -> dict[float, tuple[float, float, float]]:
    """Per ε, `new` − `classic` in accuracy under all attacks of the attack check (lib.core.robustness): each
    (mean, low, high), the interval of two accuracies on the check's test images (one seed)."""
    worst = check[check.attack == ALL]
    by = lambda model, e: worst.loc[(worst.model == model) & (worst.eps == e), "accuracy"]
    return {e: difference(by(new, e), by(classic, e), int(worst.samples.iloc[0])) for e in sorted(set(worst.eps))}


def claim4(evaluation: pd.DataFrame, samples: int, t: Thresholds = Thresholds(), new: str = "C-200d",
           classic: str = "B-200d", plain: str = "A-200d", variants: tuple[str, ...] = ("D-200d",),
           check: pd.DataFrame | None = None) -> tuple[str, str]:
    """Verdict and evidence on claim 4 from the evaluation table (one row per model × seed).

    Holds when the model trained with adversarial centers (`new`) is more robust than the classic
    center-loss model at some ε (95 % interval of the difference above 0), less robust at none,
    loses at most `max_clean_drop` clean accuracy and stays more compact than cross-entropy alone.
    Does not hold when it is less robust somewhere, loses more clean accuracy, or every interval rules
    out a gain of `min_gain`. Inconclusive otherwise. Robustness is AutoAttack's accuracy where the table has it
    (AUTOATTACK columns, on its first `autoattack_samples` images), else PGD's; PGD's differences stay in the
    evidence beside it. With an attack `check` (lib.core.robustness), a gain counts only if it survives those
    attacks too: unless `new` − `classic` under all of them lies above 0 at some ε, 'holds' becomes inconclusive.
    The verdict is C's, the model docs/study.md §6 defines for the claim; each of `variants` in the table (D: per-sample
    targets) gets the same rule's verdict in the evidence, as context.
    """
    by = lambda model, column: evaluation.loc[evaluation.model == model, column]
    attack = AUTOATTACK if robust_columns(evaluation, AUTOATTACK) else PGD
    n_attacked = attacked_images(evaluation, new, classic) if attack == AUTOATTACK else samples
    verdict, diffs, clean = replacement_test(evaluation, samples, new, classic, plain, t, attack, n_attacked)
    n = int(evaluation.groupby("model").size().get(new, 0))
    present = [v for v in variants if v in set(evaluation.model)]
    evidence = f"{new} − {classic}, robust accuracy under "
    if attack == AUTOATTACK:
        pgd = replacement_test(evaluation, samples, new, classic, plain, t, PGD)
        evidence += (f"AutoAttack (the first {n_attacked} test images): {per_eps(diffs)}. Under the evaluation's PGD "
                     f"alone (for comparison with the literature; {samples} images, {pgd[0]} by the same rule): "
                     f"{per_eps(pgd[1])}")
    else:
        evidence += "PGD: " + per_eps(diffs)
    evidence += (f"; clean accuracy: {pp(clean)}. Compactness (within/between scatter, lower is more compact): "
                 + ", ".join(f"{m} {by(m, 'compactness').mean():.3f}" for m in (plain, classic, new, *present))
                 + f". Mean over {n} seed(s), 95 % interval "
                 + ("over seeds (Welch)." if n >= 2 else f"from the test images only (one seed: {samples} clean, "
                                                         f"{n_attacked} attacked).")
                 + f" Holds if some interval lies above 0 with none below 0, the clean accuracy drops by at most "
                   f"{100 * t.max_clean_drop:g} pp and {new} is more compact than {plain}; fails if an interval lies "
                   f"below 0, every interval excludes a gain of {100 * t.min_gain:g} pp, or the clean accuracy drops more.")
    if check is not None:
        worst = worst_case_gain(check, new, classic)
        survives = any(low > 0 for _, low, _ in worst.values())
        attacks = " / ".join(dict.fromkeys(check.attack[check.attack != ALL]))
        deciding = "AutoAttack" if attack == AUTOATTACK else "the evaluation's PGD"
        outcome = "the gain survives." if survives else "no gain survives all attacks at any ε" + (
            f", so the gain under {deciding} may be masked gradients." if verdict == HOLDS else ".")
        evidence += (f" Attack check (the first seed's models, {int(check.samples.iloc[0])} test images; an image "
                     f"counts only if it survives every attack: {attacks}): {new} − {classic} "
                     + "; ".join(f"ε={e:g}: {pp(d)}" for e, d in worst.items()) + " — " + outcome)
        if verdict == HOLDS and not survives:
            verdict = INCONCLUSIVE
    for variant in present:
        v_verdict, v_diffs, v_clean = replacement_test(evaluation, samples, variant, classic, plain, t, attack, n_attacked)
        evidence += (f" Context, not part of the verdict: {variant} (each feature pulled towards its own inverse "
                     f"adversary) by the same rule {v_verdict}; {variant} − {classic} under "
                     f"{'AutoAttack' if attack == AUTOATTACK else 'PGD'}: " + per_eps(v_diffs) + f"; clean: {pp(v_clean)}.")
    return verdict, evidence


# Claim 5 (issue 32): adversarial training alone, and with inverse adversaries used two ways.
ROBUST_BASE = "E-200d"
WITH_INVERSE = {"F-200d": "C's center loss towards adversarial centers",
                "G-200d": "Dong et al.'s alignment with the inverse adversaries' outputs"}
CLAIM5 = ("Inverse adversaries increase robustness where robustness exists: added to adversarial training, as "
          "center loss towards adversarial centers (F) or as Dong et al.'s alignment (G), they make a model more "
          "robust than adversarial training alone (E) at no cost in clean accuracy.")


def claim5(evaluation: pd.DataFrame, samples: int, t: Thresholds = Thresholds(), base: str = ROBUST_BASE,
           new: tuple[str, ...] = tuple(WITH_INVERSE), history: pd.DataFrame | None = None) -> tuple[str, str, str]:
    """Verdict, evidence and key line on claim 5 from the evaluation table (one row per model × seed): each of `new`
    against `base` by `robustness_test`, under AutoAttack where the table has it, else PGD. The claim holds if it
    holds for either use of the inverse adversaries, fails if it fails for every one, and is inconclusive otherwise;
    `new[0]` − `new[1]` (which use does more) is evidence beside it, and so is each model's catastrophic overfitting
    in the held-out curves (`history`, a row per model, seed and epoch), where given."""
    attack = AUTOATTACK if robust_columns(evaluation, AUTOATTACK) else PGD
    n_attacked = attacked_images(evaluation, base) if attack == AUTOATTACK else samples
    name = "AutoAttack" if attack == AUTOATTACK else "PGD"
    tests = {m: robustness_test(evaluation, samples, m, base, t, attack, n_attacked) for m in new}
    verdicts = [v for v, _, _ in tests.values()]
    verdict = HOLDS if HOLDS in verdicts else FAILS if all(v == FAILS for v in verdicts) else INCONCLUSIVE
    n = int(evaluation.groupby("model").size().get(base, 0))
    parts = []
    for m, (v, diffs, clean) in tests.items():
        text = f"{m} ({WITH_INVERSE.get(m, 'with inverse adversaries')}) − {base} under {name}: {per_eps(diffs)}"
        if attack == AUTOATTACK:
            text += f"; under PGD: {per_eps(robustness_test(evaluation, samples, m, base, t, PGD)[1])}"
        parts.append(text + f"; clean: {pp(clean)} — {v}")
    if len(new) == 2:
        parts.append(f"{new[0]} − {new[1]} under {name}: "
                     + per_eps(robustness_test(evaluation, samples, new[0], new[1], t, attack, n_attacked)[1]))
    evidence = (". ".join(parts) + f". Mean over {n} seed(s), 95 % interval "
                + ("over seeds (Welch)" if n >= 2 else f"from the test images only ({samples} clean, {n_attacked} "
                                                       "attacked)")
                + f"{f', AutoAttack on the first {n_attacked} test images' if attack == AUTOATTACK else ''}. A model "
                  f"holds if some interval lies above 0 with none below 0 and its clean accuracy drops by at most "
                  f"{100 * t.max_clean_drop:g} pp; the claim holds if either does, fails if both fail.")
    if history is not None:
        evidence += overfitting_note(history, [base, *new], t)
    key = "; ".join(f"{m} − {base} under {name}: {key_points(diffs)}" for m, (_, diffs, _) in tests.items())
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


def published_level(evaluation: pd.DataFrame, t: Thresholds = Thresholds(), model: str = ROBUST_BASE) -> tuple[str, str]:
    """Verdict and evidence: does `model` reach the published level of adversarial training on MNIST, clean accuracy
    ≥ `t.published_clean` and PGD accuracy ≥ `t.published_pgd` at ε = `t.published_eps`, each as a mean over seeds?
    Each seed's PGD accuracy and AutoAttack's, where measured, are evidence beside it."""
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
        evidence += (f"; AutoAttack {spread(rows[aa])} on its first "
                     f"{attacked_images(evaluation, model)} test images")
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
    [pgd] = [a for a in dict.fromkeys(autoattack.attack) if a not in STAGES]
    return pgd


def masking_findings(autoattack: pd.DataFrame, t: Thresholds = Thresholds()) -> pd.DataFrame:
    """Per model × ε (means over seeds, `stage_table`): how much AutoAttack takes beyond the evaluation's PGD
    (`drop`), how much of it its gradient stages take (`gradient`: APGD-CE and APGD-T, the same kind of attack as
    PGD with an adaptive step and a scale-free loss), and `masked`: the drop is at least `masking_drop` and mostly
    theirs, so that PGD's steps, not the absence of adversaries, held the accuracy up."""
    table = stage_table(autoattack)
    pgd = pgd_attack(autoattack)
    table["drop"] = table[pgd] - table[STAGES[-1]]
    table["gradient"] = table[pgd] - table["APGD-T"]
    table["masked"] = (table["drop"] >= t.masking_drop) & (table["gradient"] >= table["drop"] / 2)
    return table


# The extension's comparisons (docs/study.md §6), each model against the ones its declaration names (lib.core.recipes):
# center loss against cross-entropy for scale, each model with inverse adversaries against classic center loss and
# against cross-entropy alone; among the adversarially trained models (claim 5), each use of inverse adversaries
# against adversarial training alone, and the two uses.
CONTRASTS = tuple((model_name(m, 200), model_name(b, 200)) for m, b in declared_contrasts())


def seeds_needed(a: pd.Series, b: pd.Series, effect: float, confidence: float = 0.95, power: float = 0.8,
                 most: int = 1000) -> int | None:
    """Seeds per model for a Welch interval of a − b to exclude 0 with probability `power` when the true difference
    is `effect`, from the measured seed variances; None with fewer than 2 seeds each, or more than `most`."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = a.var(ddof=1), b.var(ddof=1)
    for n in range(2, most + 1):
        se = np.sqrt((va + vb) / n)
        if se == 0:
            return n
        df = (va + vb) ** 2 / ((va ** 2 + vb ** 2) / (n - 1))  # Welch–Satterthwaite with n seeds each
        if (student_t.ppf(0.5 + confidence / 2, df) + student_t.ppf(power, df)) * se <= effect:
            return n
    return None


def contrasts(evaluation: pd.DataFrame, samples: int, pairs=CONTRASTS, effect: float = 0.01,
              confidence: float = 0.95) -> pd.DataFrame:
    """One row per pair × metric (clean accuracy, accuracy under PGD and under AutoAttack at each ε, compactness):
    the mean difference model − baseline over seeds with its interval (`difference`), whether the interval excludes 0
    (`decided`), and for the accuracies whether it lies within ±`effect` (`bounded`: no difference of that size
    either way) and the seeds per model that would decide a difference of `effect` (`seeds_for_effect`); `effect`
    is kept in each row. `samples` is the evaluation's test images (AutoAttack's are the table's
    `autoattack_samples`), for the interval of a single seed.

    Compactness has no interval with one seed: unlike an accuracy it has no binomial error to fall back on."""
    accuracies = ["clean_acc", *robust_columns(evaluation, PGD), *robust_columns(evaluation, AUTOATTACK)]
    images = lambda metric: attacked_images(evaluation, model, baseline) if metric.startswith(AUTOATTACK) else samples
    present = set(evaluation.model)
    by = lambda model, column: evaluation.loc[evaluation.model == model, column].reset_index(drop=True)
    rows = []
    for model, baseline in (p for p in pairs if set(p) <= present):
        for metric in [*accuracies, "compactness"]:
            a, b = by(model, metric), by(baseline, metric)
            accuracy = metric in accuracies
            diff, low, high = difference(a, b, images(metric) if accuracy else None, confidence)
            needed = seeds_needed(a, b, effect, confidence) if accuracy else None
            rows.append({"model": model, "baseline": baseline, "metric": metric, "difference": diff, "low": low,
                         "high": high, "seeds": min(len(a), len(b)), "decided": bool(low > 0 or high < 0),
                         "bounded": bool(accuracy and -effect < low and high < effect),
                         "seeds_for_effect": needed, "effect": effect})
    return pd.DataFrame(rows)
