"""The report's figures (seaborn), each a function of tidy tables or tensors that returns a Figure."""
from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

sns.set_theme(context="paper", style="whitegrid", font_scale=1.2)
PALETTE = dict(zip(range(10), sns.color_palette("tab10", 10)))
REFERENCE_LABELS = {"feature_mean": "feature means μ_c", "weight": "weight vectors W_c",
                    "center": "center-loss centers c_c"}


def feature_panel(ax: plt.Axes, features: torch.Tensor, labels: torch.Tensor, means: torch.Tensor,
                  weights: torch.Tensor, title: str) -> None:
    """2-D features coloured by class, class means as stars, weight vectors as arrows from the origin."""
    f, y = features.numpy(), labels.numpy()
    for c in range(10):
        ax.scatter(*f[y == c].T, s=2, alpha=0.3, color=PALETTE[c], rasterized=True)
    m = means.numpy()
    ax.scatter(*m.T, s=160, marker="*", c=[PALETTE[c] for c in range(10)], edgecolors="black", linewidths=0.8,
               zorder=3, label="class mean μ_c")
    # Weight rows live on another scale than features: draw them rescaled to the features' extent.
    w = weights.numpy()
    scale = np.linalg.norm(f, axis=1).max() / max(np.linalg.norm(w, axis=1).max(), 1e-12)
    for c in range(10):
        ax.annotate("", xy=tuple(w[c] * scale), xytext=(0, 0),
                    arrowprops={"arrowstyle": "-|>", "color": PALETTE[c], "lw": 2})
        ax.text(*(w[c] * scale * 1.05), str(c), color=PALETTE[c], fontsize=11, fontweight="bold")
    ax.plot([], [], color="gray", lw=2, label=f"weight vector W_c (×{scale:.3g})")
    ax.update_datalim(np.vstack([w * scale * 1.15, [[0.0, 0.0]]]))  # arrows do not widen the limits by themselves
    ax.autoscale_view()
    ax.set(title=title, xlabel="feature 1", ylabel="feature 2")
    ax.legend(loc="lower right", fontsize=9)


def figure1(panels: list[dict]) -> plt.Figure:
    """Figure 1: 2-D test features of the models in `panels` (dicts of feature_panel's arguments)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 6))
    for ax, panel in zip(np.atleast_1d(axes), panels):
        feature_panel(ax, **panel)
    fig.tight_layout()
    return fig


def cosine_vs_eps(ax: plt.Axes, averages: pd.DataFrame, reference: str, metric: str = "cosine") -> None:
    """One panel: a class-averaged metric vs ε, one line per model, band = ±1 std over classes."""
    data = averages[averages.reference == reference].sort_values("eps")
    for i, (model, d) in enumerate(data.groupby("model")):
        color = sns.color_palette("deep")[i]
        ax.plot(d.eps, d[metric], marker="o", color=color, label=model)
        if f"{metric}_std" in d:
            ax.fill_between(d.eps, d[metric] - d[f"{metric}_std"], d[metric] + d[f"{metric}_std"], color=color, alpha=0.15)
    ylabel = "mean cosine similarity" if metric == "cosine" else "mean MSE (per feature dimension)"
    ax.set(xlabel="ε (L∞ radius of the inverse adversary)", ylabel=ylabel,
           title=f"adversarial centers vs {REFERENCE_LABELS[reference]}")
    ax.legend(title="model (band: ±1 std over classes)")


def figure2(averages: pd.DataFrame) -> plt.Figure:
    """Figure 2: adversarial centers vs feature means (left) and vs weight vectors (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, reference in zip(axes, ("feature_mean", "weight")):
        cosine_vs_eps(ax, averages, reference)
    fig.tight_layout()
    return fig


def figure3(averages: pd.DataFrame, model: str = "B-200d") -> plt.Figure:
    """Figure 3: model B's adversarial centers vs its center-loss centers (cosine and MSE)."""
    data = averages[averages.model == model]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, metric in zip(axes, ("cosine", "mse")):
        cosine_vs_eps(ax, data, "center", metric)
    fig.tight_layout()
    return fig


def line_panels(data: pd.DataFrame, x: str, panels: list[tuple[str, str, str]], width: float = 6.5) -> plt.Figure:
    """One seaborn line panel per (column, y label, y scale), one line per model."""
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 4.2))
    for ax, (y, ylabel, yscale) in zip(np.atleast_1d(axes), panels):
        sns.lineplot(data, x=x, y=y, hue="model", marker="o", ax=ax)
        ax.set(ylabel=ylabel, yscale=yscale, xlabel="ε" if x == "eps" else x)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame) -> plt.Figure:
    """Cross-entropy and test accuracy per epoch, one line per model."""
    return line_panels(history, "epoch", [("ce", "training cross-entropy (epoch mean)", "log"),
                                          ("test_acc", "test accuracy", "linear")])


def attack_effect(attacks: pd.DataFrame) -> plt.Figure:
    """What the inverse adversaries did vs ε: loss, confidence, changed predictions, L∞ used."""
    fig = line_panels(attacks, "eps", [("loss_after", "mean cross-entropy after", "log"),
                                       ("confidence_after", "mean confidence in true class after", "linear"),
                                       ("prediction_changed", "fraction of predictions changed", "linear"),
                                       ("linf_mean", "mean L∞ distance used", "linear")], width=4.5)
    top = attacks.eps.max()
    fig.axes[3].plot([0, top], [0, top], ls=":", color="gray", label="ε")
    return fig


def example_grid(examples: dict[float, dict], n: int = 6) -> plt.Figure:
    """Rows per ε: clean digits, their inverse adversaries, and the perturbation (signed, gray = 0)."""
    eps_values = sorted(examples)
    fig, axes = plt.subplots(3 * len(eps_values), n, figsize=(1.3 * n, 1.4 * 3 * len(eps_values)))
    axes = np.atleast_2d(axes)
    for r, eps in enumerate(eps_values):
        ex = examples[eps]
        rows = [("clean", ex["clean"], "gray", 0, 1), ("inverse adv.", ex["adversarial"], "gray", 0, 1),
                ("perturbation", ex["adversarial"] - ex["clean"], "RdBu_r", -max(eps, 1e-3), max(eps, 1e-3))]
        for k, (name, images, cmap, lo, hi) in enumerate(rows):
            for i in range(n):
                ax = axes[3 * r + k, i]
                ax.imshow(images[i, 0].numpy(), cmap=cmap, vmin=lo, vmax=hi)
                ax.set_xticks([]), ax.set_yticks([])
                if i == 0:
                    ax.set_ylabel(f"ε={eps:g}\n{name}", fontsize=8)
    fig.tight_layout()
    return fig
