"""Step `extension` (07_extension): the extension's tables (A–G over seeds with their AutoAttack accuracy, probe,
dimension sweep, seed-wise centers, AutoAttack's stages, the logits' scale, E–G's training history per epoch, the
contrasts each model's declaration asks for, pooled and per seed, from each image's outcomes) and the verdicts on claim
4, with the attack check behind it (steps `check`, `autoattack`), and on claim 5 (the adversarially trained E, F, G),
as files in the step's folder.

AutoAttack is read from its authors' code (step `authors`: its stages, its checks, the follow-up) where the study plans
that step (authors_autoattack=1), else from the composition (step `autoattack`, which has no checks); the logits'
scale comes from the composition's step either way."""
from __future__ import annotations

import json

import pandas as pd
import torch

from lib.analysis import claims, tables
from lib.core import products
from lib.core.autoattack import FOLLOWUP, STAGES
from lib.core.centers import split_features
from lib.core.data import first
from lib.core.probe import probe
from lib.core.provenance import default_device
from lib.core.train import restore
from lib.pipeline import dag
from lib.pipeline.config import Study
from lib.pipeline.registry import STEPS
from lib.pipeline.steps.autoattack_authors import CHECK_COLUMNS
from lib.pipeline.steps.centers import make_center_tables
from lib.pipeline.steps.eps import merged
from lib.pipeline.steps.train import by_name

TABLES = tuple(f.removesuffix(".csv") for f in STEPS["extension"].files if f.endswith(".csv"))
# AutoAttack's own checks that fired (step `authors`); none where the composition ran, which has no checks
CHECKS = pd.DataFrame(columns=CHECK_COLUMNS)


def with_autoattack(comparison: pd.DataFrame, autoattack: pd.DataFrame) -> pd.DataFrame:
    """The evaluation's rows with each model's accuracy after the last AutoAttack stage at each ε
    (`autoattack_acc@ε`: after the follow-up where the authors' code ran) and the number of images AutoAttack ran on
    at every ε (`autoattack_samples`; more at the radii where a claim hinges)."""
    final = autoattack[autoattack.attack == claims.final_attack(autoattack)]
    wide = final.pivot_table(index=["model", "seed"], columns="eps", values="accuracy")
    wide = wide.rename(columns=lambda e: f"{claims.AUTOATTACK}{e:g}").rename_axis(columns=None).reset_index()
    wide["autoattack_samples"] = final.groupby(["model", "seed"]).samples.min().to_numpy()
    merged = comparison.merge(wide, on=["model", "seed"], how="left", validate="one_to_one")
    if merged.autoattack_samples.isna().any():
        missing = merged.loc[merged.autoattack_samples.isna(), ["model", "seed"]].to_records(index=False).tolist()
        raise ValueError(f"no AutoAttack for {missing}")
    return merged.astype({"autoattack_samples": int})


def autoattack_source(found: list[tuple[dag.Task, object]]) -> tuple[str, str]:
    """(the step AutoAttack is read from, the attack after which its accuracy is read): the authors' code and its
    follow-up where the study planned it, else the composition and its last stage."""
    return ("authors", FOLLOWUP) if any(t.step.name == "authors" for t, _ in found) else ("autoattack", STAGES[-1])


def outcomes(found: list[tuple[dag.Task, object]], test_split, device: torch.device,
             attacked_by: tuple[str, str]) -> dict[tuple[str, int], dict]:
    """{(model, seed): {metric: a boolean per test image}} of every compared model: its clean prediction (read off
    its checkpoint now, as the evaluation reads it), its outcome under the evaluation's PGD (`outcomes.pt`) and after
    AutoAttack (`autoattack.pt` of the step `attacked_by` names, after its attack: autoattack_source) at each ε, the
    images in the test split's order."""
    per_image: dict[tuple[str, int], dict] = {}
    source, final = attacked_by
    for t, made in found:
        seed = t.params.get("seed")
        if t.step.name == "evaluate":
            saved = products.load(t.file("outcomes.pt"))
            per_image.setdefault((saved["model"], seed), {}).update(
                {f"{claims.PGD}{eps:g}": correct.numpy() for eps, correct in saved["outcomes"].items()})
        elif t.step.name == source:
            saved = products.load(t.file("autoattack.pt"))
            per_image.setdefault((saved["model"], seed), {}).update(
                {f"{claims.AUTOATTACK}{eps:g}": stages[final].numpy() for eps, stages in saved["outcomes"].items()})
    for t, ck in found:
        if t.step.name == "train" and (key := (by_name([ck]).popitem()[0], t.params["seed"])) in per_image:
            model = restore(ck, device)[0]
            with torch.no_grad():
                predicted = model.classify(split_features(model, test_split)).argmax(1).cpu()
            per_image[key]["clean_acc"] = (predicted == test_split.labels.cpu()).numpy()
    return per_image


def make(values: dict, found: list[tuple[dag.Task, object]], device: torch.device) -> dict:
    """The extension's tables and claim 4's verdict from its key's values and its inputs' products."""
    def of(step: str, seed: int | None = None) -> list:
        return [made for t, made in found if t.step.name == step and seed in (None, t.params.get("seed"))]

    primary = values["seeds"][0]
    source = autoattack_source(found)
    fired = [made["checks"] for made in of("authors")]
    attacked = {"autoattack": pd.concat([made["autoattack"] for made in of(source[0])], ignore_index=True),
                "masking": pd.concat([made["masking"] for made in of("autoattack")], ignore_index=True),
                "checks": pd.concat(fired, ignore_index=True) if fired else CHECKS}
    comparison = with_autoattack(pd.concat(of("evaluate"), ignore_index=True), attacked["autoattack"])
    checkpoints = by_name(of("train", primary))
    runs = merged(of("eps", primary))
    test_split = first("test", values["test_images"])
    probes = []
    for name in [n for n in values["models"] if all(n in r["models"] for r in runs)]:  # those with ε runs
        model = restore(checkpoints[name], device)[0]
        adv = {r["eps"]: r["models"][name]["adv_centers"] for r in runs}
        probes.append(probe(model, name, checkpoints[name]["references"], adv, split_features(model, test_split).cpu(),
                            test_split.labels, values["mean_split"]))
    seed_centers = []
    for seed in values["seeds"]:
        refs = {name: ck["references"] for name, ck in by_name(of("train", seed)).items()}
        centers = make_center_tables(merged(of("eps", seed)), refs, values["mean_split"])["centers"]
        seed_centers.append(centers[centers.model.isin(values["models"])].assign(seed=seed))
    sweep_refs = {name: checkpoints[name]["references"] for name in values["sweep"]}
    [centers] = of("centers")
    [check] = of("check")
    robust_models = [claims.ROBUST_BASE, *claims.WITH_INVERSE]
    robust = set(robust_models) <= set(comparison.model)
    # E–G's epochs: the held-out robust accuracy, the accuracy on their own adversarial examples, the losses
    heldout = pd.concat([tables.history_table([ck for name, ck in by_name(of("train", seed)).items()
                                               if name in robust_models]).assign(seed=seed)
                         for seed in values["seeds"]], ignore_index=True)
    # each contrast paired within a seed on each image, over the seeds where neither training collapsed
    contrast, contrast_seeds = claims.contrasts(comparison, outcomes(found, test_split, device, source),
                                                skipped=claims.collapsed(heldout))
    return {"comparison": comparison, "probe": pd.concat(probes, ignore_index=True),
            "contrasts": contrast, "contrast_seeds": contrast_seeds,
            "sweep": tables.sweep_table(centers["centers"], sweep_refs, values["mean_split"]),
            "seed_centers": pd.concat(seed_centers, ignore_index=True), **attacked, "heldout": heldout,
            "claim4": claims.claim4(comparison, contrast, check=check),
            "claim5": claims.claim5(comparison, contrast, history=heldout) if robust else None}


def extension_tables(s: Study, device: torch.device | None = None) -> dict:
    """{'comparison', 'probe', 'sweep', 'seed_centers', 'autoattack', 'masking', 'checks', 'heldout', 'contrasts',
    'contrast_seeds': tables, 'claim4': (verdict, evidence, key), 'claim5': (verdict, evidence, key) where the study
    has the adversarially trained models, else None}, made now unless they exist."""
    task = dag.task(s, "extension")
    if not task.output.exists():
        device = device or default_device()
        result = make(task.key_params, dag.input_products(s, task, device), device)
        for name in TABLES:
            tables.save_csv(result[name], task.file(f"{name}.csv"))
        verdict, evidence, key = result["claim4"]
        products.write_text(json.dumps({"verdict": verdict, "evidence": evidence, "key": key,
                                        "claim5": result["claim5"]}, ensure_ascii=False), task.output)
    claim = json.loads(task.output.read_text())
    return {**{name: pd.read_csv(task.file(f"{name}.csv")) for name in TABLES},
            "claim4": (claim["verdict"], claim["evidence"], claim["key"]),
            "claim5": tuple(claim["claim5"]) if claim.get("claim5") else None}
