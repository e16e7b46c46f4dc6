"""A difference between two models as this study is built to measure it: paired within a seed, pooled over seeds.

Two models of the same seed share their initialisation and their data order, and each is attacked on the same first
test images, so within a seed their accuracies are compared image by image: the difference is the share of images
only the model keeps minus the share only the baseline keeps, and its variance is that of a paired difference of
proportions (Bonett & Price's adjusted Wald variance, which stays above zero when the two agree on every image).
Over seeds the differences are pooled as a random-effects estimate: DerSimonian & Laird's between-seed variance τ²,
and Hartung & Knapp's interval (a t-interval with k − 1 degrees of freedom on a rescaled variance, never narrower
than the image noise alone allows, as Röver et al. modify it), so the interval carries both the seed spread and the
image noise. A family of such contrasts is decided with Holm's step-down correction of their p-values.

DerSimonian & Laird, Control. Clin. Trials 1986; Hartung & Knapp, Stat. Med. 2001; Röver, Knapp & Friede, BMC Med.
Res. Methodol. 2015; Bonett & Price, J. Educ. Behav. Stat. 2012; Holm, Scand. J. Stat. 1979.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, t as student_t


@dataclass(frozen=True)
class Paired:
    """One seed's paired difference of two accuracies on the same images."""

    difference: float  # (only_a − only_b) / images
    variance: float  # Bonett & Price's adjusted Wald variance of the difference
    images: int
    only_a: int  # images the model keeps and the baseline loses
    only_b: int  # and the other way round


@dataclass(frozen=True)
class Pooled:
    """Differences of several seeds pooled: the estimate, its interval and p-value, and the variance components."""

    estimate: float
    low: float
    high: float
    p_value: float  # two-sided, of 'no difference'
    tau2: float  # between-seed variance (DerSimonian–Laird)
    within: float  # the seeds' mean image-level variance
    seeds: int


def paired(a: np.ndarray, b: np.ndarray) -> Paired:
    """The paired difference of the accuracies of `a` and `b`, each a boolean per image (the same images in order)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired outcomes need two equally long, non-empty vectors, got {a.shape} and {b.shape}")
    n, only_a, only_b = len(a), int((a & ~b).sum()), int((~a & b).sum())
    # Bonett & Price: one pseudo-image added to each discordant cell (and two to n) for the variance only
    pa, pb = (only_a + 1) / (n + 2), (only_b + 1) / (n + 2)
    return Paired((only_a - only_b) / n, (pa + pb - (pa - pb) ** 2) / (n + 2), n, only_a, only_b)


def dersimonian_laird(d: np.ndarray, v: np.ndarray) -> float:
    """The between-study variance τ² of estimates `d` with within-study variances `v` (method of moments, ≥ 0)."""
    w = 1 / v
    mean = np.sum(w * d) / np.sum(w)
    q = np.sum(w * (d - mean) ** 2)
    c = np.sum(w) - np.sum(w ** 2) / np.sum(w)
    return float(max(0.0, (q - (len(d) - 1)) / c)) if c > 0 else 0.0


def random_effects(d, v, confidence: float = 0.95, hartung_knapp: bool = True) -> Pooled:
    """Pool estimates `d` with within-seed variances `v`: DerSimonian–Laird weights; with `hartung_knapp` the
    (Röver-modified) Hartung–Knapp t-interval, else the normal one. One estimate: its own normal interval."""
    d, v = np.asarray(d, dtype=float), np.asarray(v, dtype=float)
    if len(d) == 0 or len(d) != len(v) or np.any(v <= 0):
        raise ValueError(f"random_effects needs as many positive variances as estimates, got {len(d)} and {v}")
    k = len(d)
    tau2 = dersimonian_laird(d, v) if k > 1 else 0.0
    w = 1 / (v + tau2)
    estimate = float(np.sum(w * d) / np.sum(w))
    if k > 1 and hartung_knapp:
        q = np.sum(w * (d - estimate) ** 2) / (k - 1)
        se, quantile = math.sqrt(max(1.0, q) / np.sum(w)), student_t(k - 1)
    else:
        se, quantile = math.sqrt(1 / np.sum(w)), norm()
    half = quantile.ppf(0.5 + confidence / 2) * se
    p_value = float(2 * quantile.sf(abs(estimate) / se))
    return Pooled(estimate, estimate - half, estimate + half, p_value, tau2, float(np.mean(v)), k)


def holm(p_values) -> list[float]:
    """Holm's step-down adjusted p-values of one family of tests, in the order given (each ≤ 1)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    adjusted, running = np.empty_like(p), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def seeds_to_decide(effect: float, tau2: float, within: float, confidence: float = 0.95, power: float = 0.8,
                    most: int = 1000) -> int | None:
    """Seeds per model for the pooled interval to exclude 0 with probability `power` when the true difference is
    `effect`, at the measured between-seed variance `tau2` and image-level variance `within` (each seed's images as
    now); None when more than `most` would be needed."""
    n = np.arange(2, most + 1)  # every candidate at once: a quantile per candidate costs 0.1 ms in a loop
    reach = (student_t.ppf(0.5 + confidence / 2, n - 1) + student_t.ppf(power, n - 1)) * np.sqrt((tau2 + within) / n)
    return first_true(n, reach <= effect)


def images_to_decide(effect: float, tau2: float, within: float, images: int, seeds: int, confidence: float = 0.95,
                     power: float = 0.8, most: int = 10000) -> int | None:
    """Images per seed (the image noise shrinks as 1/images) for the pooled interval of `seeds` seeds to exclude 0
    with probability `power` at a true difference `effect`; None where even noiseless images would not (the seeds'
    own spread, τ², is too large) or more than `most` would be needed (MNIST's test split holds 10,000)."""
    if seeds < 2:
        return None
    quantiles = student_t.ppf(0.5 + confidence / 2, seeds - 1) + student_t.ppf(power, seeds - 1)
    n = np.arange(images, most + 1, max(1, images // 10))
    return first_true(n, quantiles * np.sqrt((tau2 + within * images / n) / seeds) <= effect)


def first_true(candidates: np.ndarray, reached: np.ndarray) -> int | None:
    """The first candidate whose `reached` is True, or None where none is."""
    hits = np.flatnonzero(reached)
    return int(candidates[hits[0]]) if len(hits) else None
