"""The explorer (notebooks/explore.ipynb): one test digit, its inverse adversary, and where its
feature sits relative to its class's mean, center-loss center, adversarial center and weight vector.

Everything here is plain computation on the pipeline's products; the notebook only wires widgets. It opens a
profile's carried products first (products/<profile>/: the committed paper study), so on a fresh clone the paper
explorer trains and attacks nothing that is committed.
"""
from __future__ import annotations

import dataclasses

import torch

from lib.analysis.tables import reference
from lib.core.attacks import inverse_adversary
from lib.core.centers import split_features
from lib.core.data import Split, to_input
from lib.core.protocol import model_name
from lib.core.rules import RADIUS, passes
from lib.core.train import restore
from lib.pipeline import carry, dag
from lib.pipeline.config import Study
from lib.pipeline.steps.eps import eps_run
from lib.pipeline.steps.train import checkpoints


def inspect(model, x: torch.Tensor, y: int, eps: float, step_size: float, steps_: int) -> dict[str, torch.Tensor]:
    """One digit x [1, 1, 28, 28]: its inverse adversary, softmax before/after and features."""
    label = torch.tensor([y], device=x.device)
    x_adv = inverse_adversary(model, x, label, eps, step_size, steps_)
    with torch.no_grad():
        f, f_adv = model.features(x), model.features(x_adv)
        return {"clean": x[0, 0].cpu(), "adversarial": x_adv[0, 0].cpu(), "perturbation": (x_adv - x)[0, 0].cpu(),
                "probs_before": model.classify(f).softmax(1)[0].cpu(),
                "probs_after": model.classify(f_adv).softmax(1)[0].cpu(),
                "feature": f[0].cpu(), "adv_feature": f_adv[0].cpu()}


def project(class_features: torch.Tensor, points: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
    """PCA plane of one class's features: (the features in 2-D, each named point in 2-D).

    The plane is fitted on the class's features only, so the spread shown is the class's own;
    every named point is projected onto the same plane.
    """
    mean = class_features.mean(0)
    _, _, v = torch.linalg.svd(class_features - mean, full_matrices=False)
    axes = v[:2].T  # [D, 2]
    return (class_features - mean) @ axes, {name: (p - mean) @ axes for name, p in points.items()}


def with_eps(s: Study, eps: float) -> Study:
    """The same study with ε added to its grid (what the explorer's button computes)."""
    return dataclasses.replace(s, eps=tuple(sorted({*s.eps, float(eps)})))


def computed_eps(s: Study) -> list[float]:
    """ε values whose ε run exists for this study: its grid, and any computed beside it (the explorer's button)."""
    found = set(s.eps)
    for folder in (dag.runs_dir() / s.profile).glob("eps-*"):
        label = folder.name.removeprefix("eps-").split("-", 1)[0]  # 'eps-0.12-A-200d-<key>'
        try:
            eps = float(label)
        except ValueError:
            continue
        if eps not in found and passes(RADIUS, eps) and all(
                dag.eps_task(with_eps(s, eps), eps, m, d).output.exists() for m, d in s.attacked()):
            found.add(eps)
    return sorted(found)


def restore_committed(s: Study) -> list[str]:
    """Copy into runs/ the store's products of what the explorer reads (the first seed's trainings and ε runs),
    checked against the store's manifest; one line per product restored."""
    tasks = dag.plan(s)
    read = {name: t for name, t in tasks.items() if t.step.name in ("train", "eps") and t.params["seed"] == s.seed}
    return carry.restore(read, s.profile)


class Explorer:
    """State behind the explorer's widgets: every model the study trains at its first seed, their products (the
    carried ones restored first), the attack split."""

    def __init__(self, s: Study, device: torch.device):
        self.study, self.device = s, device
        self.restored = restore_committed(s)
        self.checkpoints = checkpoints(s, s.models(), device)  # trained now if neither made nor carried
        self.models = {name: restore(ck, device)[0] for name, ck in self.checkpoints.items()}
        # the models whose ε runs the study makes: the others (e.g. G) are shown without an adversarial center
        self.attacked = [model_name(m, d) for m, d in s.attacked()]
        self.split = s.split(s.attack_split).subset(s.attack_samples)
        self.eps_grid = computed_eps(s)
        self._runs: dict[float, dict] = {}
        self._features: dict[tuple[str, int], torch.Tensor] = {}

    def indices(self, digit_class: int) -> list[int]:
        """Positions (in the attack split) of the digits of one class."""
        return (self.split.labels == digit_class).nonzero().flatten().tolist()

    def eps_run(self, eps: float) -> dict:
        """The ε run of the attacked models (computed now, with a progress bar, for an ε outside the grid)."""
        if eps not in self._runs:
            self.eps_grid = sorted({*self.eps_grid, float(eps)})
            self._runs[eps] = eps_run(with_eps(self.study, eps), eps, self.device)
        return self._runs[eps]

    def class_features(self, model: str, digit_class: int) -> torch.Tensor:
        """Features of one class's attacked digits (computed once: every widget move redraws this cloud)."""
        if (model, digit_class) not in self._features:
            mask = self.split.labels == digit_class
            split = Split(self.split.images[mask], self.split.labels[mask])
            self._features[model, digit_class] = split_features(self.models[model], split).cpu()
        return self._features[model, digit_class]

    def state(self, model: str, digit_class: int, eps: float, index: int) -> dict:
        """Everything the view shows for one choice of the widgets; `index` is the digit's place in its class."""
        indices = self.indices(digit_class)
        if not 0 <= index < len(indices):
            raise ValueError(f"class {digit_class} has {len(indices)} digits among the attacked images; "
                             f"index must be in 0..{len(indices) - 1}, got {index}")
        position = indices[index]
        net, refs = self.models[model], self.checkpoints[model]["references"]
        x = to_input(self.split.images[position:position + 1]).to(self.device)
        result = inspect(net, x, digit_class, eps, self.study.step_size, self.study.steps)
        features = self.class_features(model, digit_class)
        mean = reference(refs, "feature_mean", self.study.mean_split)[digit_class]
        weight = reference(refs, "weight", self.study.mean_split)[digit_class]
        points = {"this digit": result["feature"], "its inverse adversary": result["adv_feature"],
                  "feature mean μ": mean, "center-loss center c": reference(refs, "center", self.study.mean_split)[digit_class],
                  # W_c is a direction on another scale: shown at the mean's length
                  "weight vector W (direction)": weight / weight.norm().clamp_min(1e-12) * mean.norm()}
        if model in self.attacked:
            points["adversarial center (ε)"] = self.eps_run(eps)["models"][model]["adv_centers"][digit_class]
        cloud, projected = project(features, points)
        return {**result, "cloud": cloud, "points": projected, "model": model, "digit_class": digit_class,
                "eps": eps, "position": position, "index": index, "count": len(indices)}

    def caption(self, state: dict) -> str:
        """One line naming what the view shows, with one index per thing: the digit's place in its class and
        its image number in the attack split."""
        centers = (f"ε computed: {', '.join(f'{e:g}' for e in self.eps_grid)}" if state["model"] in self.attacked else
                   "no adversarial center: the study makes no ε runs of this model")
        return (f"{state['model']} · class {state['digit_class']}: digit {state['index'] + 1} of {state['count']} "
                f"(image #{state['position']} of the {self.study.attack_split} split) · ε = {state['eps']:g} · "
                f"{centers}")
