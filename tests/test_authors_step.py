"""Step `authors`: AutoAttack from its authors' code in the pipeline (issue 53). Planned only on request beside the
composition's step until its paper runs are made, with more images where claim 5 hinges; on the smoke run's own
models it keeps, image by image, what the composition kept, and it resumes from a state its run saved."""
import pandas as pd
import pytest
import torch

from lib.core.errors import ConfigError
from lib.pipeline import cost, dag
from lib.pipeline.config import study


def authors_tasks(s) -> dict:
    return {name: t for name, t in dag.plan(s).items() if t.step.name == "authors"}


def test_it_is_planned_only_on_request_with_more_images_where_claim_5_hinges():
    assert authors_tasks(study("paper")) == {} and authors_tasks(study("smoke")) == {}
    tasks = authors_tasks(study("paper", "authors_autoattack=1"))
    assert len(tasks) == 7 * 3
    images = {name: t.key_params["images"] for name, t in tasks.items()}
    assert images["authors-E-200d-s2"] == images["authors-G-200d"] == {"0.1": 250, "0.2": 1000, "0.3": 1000}
    assert images["authors-F-200d-s1"] == {"0.1": 250, "0.2": 250, "0.3": 250}
    assert images["authors-A-200d"] == {"0.1": 750, "0.2": 750, "0.3": 750}
    fewer = authors_tasks(study("paper", "authors_autoattack=1 hinge_autoattack_samples=100"))
    assert fewer["authors-E-200d"].key_params["images"] == images["authors-F-200d-s1"]  # never below E–G's own
    # the composition's keys do not move with the hinge: its committed products stay what they are; the extension,
    # which then reads the authors' AutoAttack, and the figures after it are the only other steps that change
    with_step, without = dag.plan(study("paper", "authors_autoattack=1")), dag.plan(study("paper"))
    assert {n for n, t in with_step.items() if n not in tasks and t.key != without[n].key} == {"extension", "figures"}
    assert set(with_step) - set(tasks) == set(without)


def test_its_settings_are_checked_by_name():
    with pytest.raises(ConfigError, match=r"hinge_eps must be among robust_eps \[0.1, 0.3\].*drop \[0.2\]"):
        study("paper", "authors_autoattack=1 robust_eps=0.1,0.3 hinge_eps=0.2")
    assert study("paper", "robust_eps=0.1").hinge_eps == (0.2, 0.3)  # without the step the hinge is not read
    with pytest.raises(ConfigError, match="set authors_autoattack=1"):
        dag.authors_task(study("smoke"), "E", 200)


def test_its_cost_counts_the_hinge_images_and_the_follow_up_of_e_to_g():
    s = study("paper", "authors_autoattack=1")
    work = lambda model: cost.task_work(s, "authors", {"model": model, "feature_dim": 200, "seed": 0})
    composition = lambda model: cost.task_work(s, "autoattack", {"model": model, "feature_dim": 200, "seed": 0})
    assert work("A") == {"attack": composition("A")["attack"], "forward": 3 * 750}  # no follow-up, no logits' scale
    followup = 250 * cost.ROBUST_SURVIVORS * cost.FOLLOWUP_PGD_STEPS  # at the largest ε only
    assert work("F")["attack"] == round(composition("F")["attack"] + followup)
    assert work("E")["attack"] == round((250 + 1000 + 1000) * cost.ROBUST_SURVIVORS * cost.AUTOATTACK_PGD_STEPS
                                        + 4 * followup)


@pytest.mark.slow
@pytest.mark.pipeline("train", "evaluate", "autoattack")
def test_on_the_smoke_models_it_keeps_what_the_composition_kept_and_resumes_from_a_saved_state(tmp_path, monkeypatch):
    """E of the smoke run at ε 0.1 (20 images) and 0.3 (the hinge: 40): its first row is the evaluation's PGD, every
    stage keeps a subset of the one before, the follow-up row equals Square's where the check did not fire, and on
    the composition's 20 images every stage keeps the same images as the composition's step did (the cross-check
    per image). A state saved by a run of the same values, as a long rerun leaves one, is taken, not attacked again."""
    from lib.core import autoattack as aa
    from lib.core import products
    from lib.core.data import first
    from lib.core.train import restore
    from lib.pipeline.steps import autoattack_authors as step
    from tests.regression import runs_at
    from tests.smoke import copy_of_smoke_runs

    runs = copy_of_smoke_runs(tmp_path / "runs", ("train", "evaluate", "autoattack"))
    s = study("smoke", "authors_autoattack=1")
    with runs_at(runs):
        task, composition = dag.authors_task(s, "E", 200), dag.autoattack_task(s, "E", 200)
        evaluated = products.load(dag.evaluate_task(s, "E", 200).file("outcomes.pt"))["outcomes"]
        theirs = products.load(composition.file("autoattack.pt"))["outcomes"]
        model = restore(products.load(dag.train_task(s, "E", 200).output))[0]
        values = task.key_params
        assert values["images"] == {"0.1": 20, "0.3": 40}
        saved = step.resume_state(task.folder, 0.3)
        with cost.threads(1):  # Square's small queries: one thread, so the smoke run beside it does not stall them
            aa.run(model, first("test", 40), 0.3, evaluated[0.3][:40], values["seed"], iterations=values["iterations"],
                   queries=values["queries"], state=saved)
            attacked, real = [], aa.adversary
            monkeypatch.setattr(aa, "adversary", lambda model, eps, *a, **k: attacked.append(eps) or real(model, eps, *a,
                                                                                                           **k))
            made = step.autoattack_tables(s, "E", 200)
        per_image = products.load(task.file("autoattack.pt"))["outcomes"]
    assert set(attacked) == {0.1} and not saved.exists()  # ε 0.3 came from its state, which the product supersedes
    table = made["autoattack"]
    assert set(made["checks"].columns) == {"model", "seed", "eps", "check", "message"}
    for eps, n in ((0.1, 20), (0.3, 40)):
        outcomes = per_image[eps]
        assert list(outcomes) == [f"PGD-{s.robust_steps}", *aa.REPORTED]
        assert torch.equal(outcomes[f"PGD-{s.robust_steps}"], evaluated[eps][:n])
        stacked = torch.stack(list(outcomes.values()))
        assert (stacked[1:] <= stacked[:-1]).all()
        rows = table[table.eps == eps].set_index("attack")
        assert rows.accuracy.to_dict() == pytest.approx({k: v.float().mean().item() for k, v in outcomes.items()})
        assert (rows.samples == n).all()
        if aa.SQUARE_CHECK not in set(made["checks"][made["checks"].eps == eps].check):
            assert torch.equal(outcomes[aa.FOLLOWUP], outcomes["Square"])
        for stage in aa.STAGES:  # the cross-check: the same images as the composition's, stage by stage
            assert torch.equal(outcomes[stage][:20], theirs[eps][stage]), (eps, stage)


def stage_rows(model: str, seed: int, eps: float, samples: int, accuracies: list[float]) -> list[dict]:
    attacks = ["PGD-40", "APGD-CE", "APGD-T", "FAB-T", "Square", "Square, follow-up"]
    return [{"model": model, "seed": seed, "eps": eps, "attack": a, "accuracy": acc, "samples": samples,
             "seconds": 1.0} for a, acc in zip(attacks, accuracies)]


def test_the_checks_read_as_where_they_fired_and_what_the_follow_up_took():
    from lib.analysis import checks
    from lib.core.autoattack import SQUARE_CHECK

    table = pd.DataFrame(stage_rows("E", 0, 0.1, 250, [0.96, 0.95, 0.95, 0.95, 0.95, 0.95])
                         + stage_rows("E", 0, 0.3, 1000, [0.92, 0.91, 0.90, 0.90, 0.89, 0.884])
                         + stage_rows("E", 1, 0.3, 1000, [0.93, 0.92, 0.91, 0.91, 0.90, 0.88]))
    fired = pd.DataFrame([{"model": "E", "seed": seed, "eps": 0.3, "check": SQUARE_CHECK, "message": "…"}
                          for seed in (0, 1)])
    text = checks.interpret_checks(fired, table)
    assert f"* {SQUARE_CHECK}: E at ε=0.3 (seed 0, 1)." in text
    assert "took 2.0 points more at most (1.3 on average)" in text  # 0.89 → 0.884 and 0.90 → 0.88
    assert "None of AutoAttack's own checks fired" in checks.interpret_checks(fired.iloc[:0], table)


def test_the_extension_reads_autoattack_after_the_follow_up_where_the_authors_code_ran():
    """The authors' rows end with the follow-up (Square's where its check did not fire): the accuracy AutoAttack
    reports, what it takes beyond PGD and the images it ran on are read after it; the composition's rows end at
    Square and have no checks, which the report says."""
    from types import SimpleNamespace

    from lib.analysis import checks, claims, report
    from lib.core.autoattack import FOLLOWUP, SQUARE_CHECK
    from lib.pipeline.steps.extension import autoattack_source, with_autoattack

    table = pd.DataFrame(stage_rows("E", 0, 0.1, 250, [0.96, 0.95, 0.95, 0.95, 0.95, 0.95])
                         + stage_rows("E", 0, 0.3, 1000, [0.92, 0.91, 0.90, 0.90, 0.89, 0.884])
                         + stage_rows("E", 1, 0.1, 250, [0.97, 0.96, 0.96, 0.96, 0.96, 0.96])
                         + stage_rows("E", 1, 0.3, 1000, [0.93, 0.92, 0.91, 0.91, 0.90, 0.88]))
    composition = table[table.attack != FOLLOWUP]
    assert (claims.final_attack(table), claims.final_attack(composition)) == (FOLLOWUP, "Square")
    assert claims.pgd_attack(table) == claims.pgd_attack(composition) == "PGD-40"
    drop = claims.masking_findings(table).set_index(["model", "eps"])["drop"]
    assert drop["E", 0.3] == pytest.approx((0.92 + 0.93) / 2 - (0.884 + 0.88) / 2)
    assert claims.masking_findings(composition).set_index(["model", "eps"])["drop"]["E", 0.3] == pytest.approx(0.03)

    merged = with_autoattack(pd.DataFrame({"model": ["E", "E"], "seed": [0, 1]}), table)
    assert merged["autoattack_acc@0.3"].tolist() == pytest.approx([0.884, 0.88])
    assert merged.autoattack_samples.tolist() == [250, 250]  # the images it ran on at every ε
    text = report.interpret_autoattack(table)
    assert "On the first 250 or 1,000 test images" in text and "FAB-T, Square and the follow-up add at most" in text
    assert "FAB-T and Square add at most" in report.interpret_autoattack(composition)

    tasks = lambda *steps: [(SimpleNamespace(step=SimpleNamespace(name=name)), None) for name in steps]
    assert autoattack_source(tasks("evaluate", "autoattack", "authors")) == ("authors", FOLLOWUP)
    assert autoattack_source(tasks("evaluate", "autoattack")) == ("autoattack", "Square")

    fired = pd.DataFrame([{"model": "E", "seed": seed, "eps": 0.3, "check": SQUARE_CHECK, "message": "…"}
                          for seed in (0, 1)])
    assert checks.fired_table(fired).loc[("E", "ε=0.3"), SQUARE_CHECK] == "seed 0, seed 1"
    assert checks.interpret_source(fired, table) == checks.interpret_checks(fired, table)
    assert "runs none of its authors' reliability checks" in checks.interpret_source(fired.iloc[:0], composition)
