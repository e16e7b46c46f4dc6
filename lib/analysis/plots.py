"""The report's figures (seaborn), each a function of tidy tables or tensors that returns a Figure."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from lib.analysis.markup import CAPTION
from lib.core.products import atomic_path

sns.set_theme(context="paper", style="whitegrid", font_scale=1.2)
PALETTE = dict(zip(range(10), sns.color_palette("tab10", 10)))
REFERENCE_LABELS = {"feature_mean": "feature means μ_c", "weight": "weight vectors W_c",
                    "center": "center-loss centers c_c"}


def save(fig: plt.Figure, folder: Path | str, name: str) -> None:
    """The figure as <name>.png (150 dpi) and <name>.svg (dense scatters rasterized), written atomically."""
    for suffix, options in ((".png", {"dpi": 150}), (".svg", {})):
        with atomic_path(Path(folder) / f"{name}{suffix}") as tmp:
            fig.savefig(tmp, format=suffix[1:], bbox_inches="tight", **options)


def show(fig: plt.Figure, folder: Path | str, name: str, caption: str) -> None:
    """Save the figure (`save`) and show it with its caption under it, saying what to look at."""
    from IPython.display import HTML, display

    save(fig, folder, name)
    display(fig)
    plt.close(fig)
    display(HTML(f"<p class='{CAPTION}'>{caption}</p>"))


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


def cosine_vs_eps(ax: plt.Axes, averages: pd.DataFrame, reference: str, metric: str = "cosine",
                  band: str = "classes") -> None:
    """One panel: a class-averaged metric vs ε, one line per model, band = ±1 std (over `band`)."""
    data = averages[averages.reference == reference].sort_values("eps")
    for i, (model, d) in enumerate(data.groupby("model")):
        color = sns.color_palette("deep")[i]
        ax.plot(d.eps, d[metric], marker="o", color=color, label=model)
        if f"{metric}_std" in d:
            ax.fill_between(d.eps, d[metric] - d[f"{metric}_std"], d[metric] + d[f"{metric}_std"], color=color, alpha=0.15)
    ylabel = "mean cosine similarity" if metric == "cosine" else "mean MSE (per feature dimension)"
    ax.set(xlabel="ε (L∞ radius of the inverse adversary)", ylabel=ylabel,
           title=f"adversarial centers vs {REFERENCE_LABELS[reference]}")
    ax.legend(title=f"model (band: ±1 std over {band})")


def figure2(averages: pd.DataFrame, band: str = "classes") -> plt.Figure:
    """Figure 2: adversarial centers vs feature means (left) and vs weight vectors (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, reference in zip(axes, ("feature_mean", "weight")):
        cosine_vs_eps(ax, averages, reference, band=band)
    fig.tight_layout()
    return fig


def figure3(averages: pd.DataFrame, model: str = "B-200d", band: str = "classes") -> plt.Figure:
    """Figure 3: model B's adversarial centers vs its center-loss centers (cosine and MSE)."""
    data = averages[averages.model == model]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    for ax, metric in zip(axes, ("cosine", "mse")):
        cosine_vs_eps(ax, data, "center", metric, band=band)
    fig.tight_layout()
    return fig


COMPARISON_PANELS = {"clean_acc": "clean test accuracy", "compactness": "within / between class scatter",
                     "alignment": "mean cos(class mean, W_c)", "nc3": "NC3 (0 = self-dual)",
                     "epoch_seconds": "seconds per training epoch"}


def comparison(table: pd.DataFrame) -> plt.Figure:
    """Models A–G side by side: one bar panel per metric, error bars ±1 std over seeds."""
    robust = {c: f"accuracy under PGD, ε = {c.split('@')[1]}" for c in table.columns if c.startswith("robust_acc@")}
    panels = {"clean_acc": COMPARISON_PANELS["clean_acc"], **robust,
              **{k: v for k, v in COMPARISON_PANELS.items() if k != "clean_acc"}}
    fig, axes = plt.subplots(2, -(-len(panels) // 2), figsize=(3.4 * -(-len(panels) // 2), 7))
    for ax, (column, label) in zip(axes.flat, panels.items()):
        sns.barplot(table, x="model", y=column, hue="model", errorbar="sd", ax=ax, legend=False, palette="deep")
        ax.set(title=label, xlabel="", ylabel="")
        if column.endswith("acc") or "@" in column:
            low = table[column].min()
            ax.set_ylim(max(0.0, low - 0.1 * max(1 - low, 0.01)), 1.0)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def autoattack_stages(autoattack: pd.DataFrame) -> plt.Figure:
    """Accuracy after the evaluation's PGD and after each AutoAttack stage, one panel per ε, one line per model and
    seed (a seed that collapsed is a line of its own, not a band over the others): a line that falls at APGD-CE or
    APGD-T, not at PGD, is masked gradients."""
    eps = sorted(autoattack.eps.unique())
    order = list(dict.fromkeys(autoattack.attack))
    data = autoattack.assign(stage=autoattack.attack.map(order.index), accuracy=100 * autoattack.accuracy)
    fig, axes = plt.subplots(1, len(eps), figsize=(4.2 * len(eps), 3.6), sharey=True, squeeze=False)
    for ax, e in zip(axes[0], eps):
        sns.lineplot(data[data.eps == e], x="stage", y="accuracy", hue="model", units="seed", estimator=None,
                     marker="o", lw=1, alpha=0.8, ax=ax, palette="deep", legend=ax is axes[0][0])
        ax.set(title=f"ε = {e:g}", xlabel="", ylabel="accuracy (%)", ylim=(-2, 100))
        ax.set_xticks(range(len(order)), order, rotation=30)
    fig.tight_layout()
    return fig


def forest(pooled: pd.DataFrame, seeds: pd.DataFrame, labels: list[str], verdict: str,
           effect: float = 0.01) -> plt.Figure:
    """A claim's contrasts as a forest plot: a row per contrast and ε (rows of claims.contrasts, in order, named by
    `labels`), each seed's paired difference as a dot (`seeds`: claims.contrasts' per-seed table), the pooled 95 %
    interval as a bar with its estimate, 0 and ±`effect` marked, the claim's verdict in the title. Points."""
    rows = pooled.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(8.5, 0.45 * len(rows) + 1.4))
    span = max(1.0, *(100 * rows.high.abs()), *(100 * rows.low.abs()))
    for y, r in rows.iterrows():
        ax.plot([100 * r.low, 100 * r.high], [y, y], color="black", lw=2.5, solid_capstyle="butt")
        ax.plot(100 * r.difference, y, "s", color="black", ms=6)
        dots = seeds[(seeds.model == r.model) & (seeds.baseline == r.baseline) & (seeds.metric == r.metric)]
        ax.scatter(100 * dots.difference, np.full(len(dots), y + 0.18), s=22, color="tab:blue", zorder=3,
                   label="each seed" if y == 0 else None)
    ax.axvline(0, color="gray", lw=1)
    for side in (-1, 1):
        ax.axvline(side * 100 * effect, color="gray", lw=0.8, ls=":")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set(xlim=(-1.05 * span, 1.05 * span), xlabel="difference (percentage points): pooled 95 % interval, each seed",
           title=f"verdict: {verdict}")
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    return fig


def probe_figure(probe: pd.DataFrame) -> plt.Figure:
    """Likelihood vs reachability of each candidate point, class-averaged, one panel per model.

    x: distance to the nearest feature of the class, in units of the class's spread (≲ 1: inside the
    cloud the extractor produces); y: the head's probability of the class at the point (logit scale).
    """
    models = list(dict.fromkeys(probe.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.4), sharey=True, squeeze=False)
    colours = dict(zip(["feature mean", "center", "weight direction", "adversarial center"], sns.color_palette("deep")))
    markers = {"feature mean": "*", "center": "P", "weight direction": "^", "adversarial center": "o"}
    eps_key = probe.eps.fillna(-1)
    mean = probe.assign(eps_key=eps_key).groupby(["model", "candidate", "eps_key"], sort=False)[
        ["probability", "relative_distance"]].mean().reset_index()
    clip = lambda p: np.clip(p, 1e-6, 1 - 1e-6)  # the logit axis cannot show exact 0 or 1
    for ax, model in zip(axes[0], models):
        for candidate, d in mean[mean.model == model].groupby("candidate", sort=False):
            ax.plot(d.relative_distance, clip(d.probability), marker=markers[candidate], ms=11 if candidate != "adversarial center" else 6,
                    ls="-" if candidate == "adversarial center" else "none", color=colours[candidate], label=candidate)
            if candidate == "adversarial center":
                for r in d.iloc[[0, -1]].itertuples():
                    ax.annotate(f"ε={r.eps_key:g}", (r.relative_distance, clip(r.probability)), fontsize=8,
                                xytext=(4, 4), textcoords="offset points")
        ax.axvline(1.0, ls=":", color="gray")
        ax.set(xscale="log", yscale="logit", title=model, xlabel="distance to nearest feature of the class\n(÷ class spread)")
        # The range spans about one decade: label 1-2-5 steps plainly; matplotlib's default labels
        # every minor tick in scientific notation there, and they overlap.
        ax.xaxis.set_major_locator(mticker.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(mticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    axes[0, 0].set_ylabel("head's probability of the class at the point")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=9, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


SWEEP_PANELS = {"feature_mean": "adversarial centers vs feature means", "weight": "adversarial centers vs weight vectors",
                "center": "adversarial centers vs centers", "mean_vs_weight": "feature means vs weight vectors (clean)"}


def sweep_figure(sweep: pd.DataFrame, eps: float) -> plt.Figure:
    """The dimension sweep: class-averaged cosines vs feature dimension, models A and B, at one ε."""
    fig, axes = plt.subplots(1, len(SWEEP_PANELS), figsize=(4.4 * len(SWEEP_PANELS), 4), sharey=True)
    for ax, (reference, title) in zip(axes, SWEEP_PANELS.items()):
        data = sweep[(sweep.reference == reference) & ((sweep.eps == eps) | sweep.eps.isna())]
        sns.lineplot(data, x="feature_dim", y="cosine", hue="loss", marker="o", ax=ax, palette="deep")
        ax.set(xscale="log", title=title + ("" if reference == "mean_vs_weight" else f", ε = {eps:g}"),
               xlabel="feature dimension", ylabel="mean cosine similarity")
        ax.set_xticks(sorted(sweep.feature_dim.unique()), labels=sorted(sweep.feature_dim.unique()))
    fig.tight_layout()
    return fig


def line_panels(data: pd.DataFrame, x: str, panels: list[tuple[str, str, str]], width: float = 6.5,
                units: str | None = None) -> plt.Figure:
    """One seaborn line panel per (column, y label, y scale), one line per model (the mean, with a 95 % band), or
    one per model and value of column `units` (e.g. each seed's own line)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 4.2))
    for ax, (y, ylabel, yscale) in zip(np.atleast_1d(axes), panels):
        sns.lineplot(data, x=x, y=y, hue="model", marker="o", ax=ax, units=units, estimator=None if units else "mean")
        ax.set(ylabel=ylabel, yscale=yscale, xlabel="ε" if x == "eps" else x)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame) -> plt.Figure:
    """Cross-entropy and test accuracy per epoch, one line per model."""
    return line_panels(history, "epoch", [("ce", "training cross-entropy (epoch mean)", "log"),
                                          ("test_acc", "test accuracy", "linear")])


def heldout_curves(history: pd.DataFrame) -> plt.Figure:
    """Per epoch, the held-out robust accuracy and the accuracy on the model's own training examples, one line per
    model and seed: a collapse in one seed (catastrophic overfitting) would vanish into a mean's band."""
    return line_panels(history, "epoch", [("heldout_pgd", "held-out PGD-10 accuracy, ε = 0.3", "linear"),
                                          ("train_acc_running", "accuracy on its own training examples", "linear")],
                       units="seed")


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


def explorer_view(state: dict) -> plt.Figure:
    """The explorer: clean digit, inverse adversary, perturbation, softmax before/after, and the
    digit's feature among its class's (PCA plane of the class) with the class's reference points."""
    fig = plt.figure(figsize=(17, 4.2))
    grid = fig.add_gridspec(1, 5, width_ratios=[1, 1, 1, 1.5, 2.2])
    limit = max(float(state["perturbation"].abs().max()), 1e-6)
    for i, (key, title, cmap, vmin, vmax) in enumerate((
            ("clean", f"digit {state['index'] + 1} of class {state['digit_class']} (image #{state['position']})",
             "gray", 0, 1),
            ("adversarial", f"inverse adversary, ε = {state['eps']:g}", "gray", 0, 1),
            ("perturbation", f"perturbation (max |δ| = {limit:.3f})", "RdBu_r", -limit, limit))):
        ax = fig.add_subplot(grid[i])
        ax.imshow(state[key], cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set(title=title, xticks=[], yticks=[])
    ax = fig.add_subplot(grid[3])
    classes = np.arange(10)
    ax.bar(classes - 0.2, state["probs_before"], 0.4, label="clean", color="gray")
    ax.bar(classes + 0.2, state["probs_after"], 0.4, label="inverse adversary", color=sns.color_palette("deep")[0])
    ax.set(xticks=classes, xlabel="class", ylabel="softmax probability", ylim=(0, 1.05), title="prediction")
    ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # never over a bar
    ax = fig.add_subplot(grid[4])
    cloud = state["cloud"].numpy()
    ax.scatter(*cloud.T, s=6, alpha=0.25, color=PALETTE[state["digit_class"]], label="features of the class",
               rasterized=True)
    markers = {"this digit": "o", "its inverse adversary": "D", "feature mean μ": "*", "center-loss center c": "P",
               "adversarial center (ε)": "X", "weight vector W (direction)": "^"}
    colors = dict(zip(markers, sns.color_palette("dark", len(markers))))  # each point its own, whichever are shown
    for name, point in state["points"].items():
        color = colors.get(name, "black")
        if name == "this digit":  # a ring on top: at ε = 0 the adversary sits exactly on it and must not hide it
            ax.scatter(*point.numpy(), s=260, marker="o", facecolors="none", edgecolors=color, linewidths=2.2,
                       zorder=5, label=name)
        else:
            ax.scatter(*point.numpy(), s=140, marker=markers.get(name, "o"), color=color, edgecolors="white",
                       linewidths=0.8, zorder=3, label=name)
    start, end = state["points"]["this digit"].numpy(), state["points"]["its inverse adversary"].numpy()
    ax.annotate("", xy=tuple(end), xytext=tuple(start), arrowprops={"arrowstyle": "->", "color": "black"})
    ax.set(title=f"{state['model']}: feature space (PCA plane of class {state['digit_class']})",
           xlabel="principal direction 1", ylabel="principal direction 2")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig
