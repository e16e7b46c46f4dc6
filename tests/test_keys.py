"""What an edit recomputes: a product's key holds the values it depends on, the code that computes it (found from the
code, the planner left out) and its inputs' keys — so an edit that computes nothing new recomputes nothing, and one
that does recomputes exactly its dependents (issue 28)."""
import ast
import dataclasses
import json
import shutil
import subprocess
import sys

import pytest

from lib import ROOT
from lib.core.protocol import DECLARED_PARAMETERS, TrainConfig
from lib.core.recipes import PROTOCOL_PARAMS, RECIPES
from lib.pipeline import code, dag, registry
from lib.pipeline.config import study

SMOKE = "smoke"


def keys(s=None) -> dict[str, str]:
    return {name: t.key for name, t in dag.plan(s or study(SMOKE)).items()}


def changed(before: dict, after: dict) -> set[str]:
    """Tasks whose key changed, and tasks that are new (both run)."""
    return {n for n in after if before.get(n) != after[n]}


def tasks_of(names: set[str], *steps: str) -> set[str]:
    return {n for n in names if n.split("-", 1)[0] in steps}


ALL = set(keys())
TRAININGS = tasks_of(ALL, "train")
AFTER_ATTACKS = tasks_of(ALL, "eps", "evaluate", "check", "autoattack", "centers", "extension", "figures")


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """A copy of lib/ and notebooks/ that dag hashes instead of the repository's; edit(path, old, new) edits it."""
    shutil.copytree(ROOT / "lib", tmp_path / "lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    monkeypatch.setattr(dag, "ROOT", tmp_path)
    monkeypatch.setattr(dag, "NOTEBOOKS", tmp_path / "notebooks")

    def edit(path: str, old: str, new: str) -> None:
        file = tmp_path / "lib" / path
        text = file.read_text()
        assert text.count(old) == 1, f"{old!r} is not once in {path}"
        file.write_text(text.replace(old, new))

    edit.root = tmp_path
    return edit


@pytest.mark.parametrize("path, old, new", [
    ("core/attacks.py", "DESCEND, ASCEND = -1.0, 1.0\n", "DESCEND, ASCEND = -1.0, 1.0  # a comment\n"),
    ("core/train.py", '"""Top-1 accuracy in eval mode."""', '"""Top-1 accuracy, in eval mode (a docstring)."""'),
    ("core/attacks.py", "\n\ndef inverse_adversary(", "\n\ndef unused(x):\n    return 2 * x\n\n\ndef inverse_adversary("),
    ("pipeline/config.py", "\n\ndef study(", "\n\ndef planner_helper():\n    return 3\n\n\ndef study("),
    ("pipeline/dag.py", "def plan(s: Study)", "def plan(s: Study)  "),  # layout
], ids=["comment", "docstring", "new-unused-function", "planner-code", "layout"])
def test_an_edit_that_computes_nothing_new_recomputes_nothing(copy, path, old, new):
    before = keys()
    copy(path, old, new)
    assert changed(before, keys()) == set()


def add_statement(file, function: str) -> None:
    """One more statement at the top of a top-level function's body (after its docstring): a change of behaviour."""
    text = file.read_text()
    start = text.index(f"\ndef {function}(")
    body = text.index('"""\n', text.index('"""', start) + 3) + 4
    file.write_text(text[:body] + "    _ = 0\n" + text[body:])


@pytest.mark.parametrize("path, function, recomputed", [
    # PGD's batch size: ε runs, evaluations, attack check, and E–G's trainings (their held-out monitor attacks in
    # PGD's batches); not A–D's
    ("core/attacks.py", None, AFTER_ATTACKS | {n for n in TRAININGS if n.startswith(("train-E-", "train-F-",
                                                                                     "train-G-"))}),
    # PGD's step: C and D make inverse adversaries while training, A and B do not (each training covers its recipe)
    ("core/attacks.py", "pgd", ALL - {n for n in TRAININGS if n.startswith(("train-A-", "train-B-"))}),
    ("core/products.py", "load", ALL),  # a module no list names: every step saves or loads through it
    ("core/robustness.py", "attack_check", {"check", "extension", "figures"}),  # no evaluation, no ε run
    ("core/autoattack.py", "cascade", {*tasks_of(ALL, "autoattack"), "extension", "figures"}),  # each model's own
    ("analysis/tables.py", "sweep_table", {"extension", "figures"}),  # the extension's own tables: no attack
    ("analysis/plots.py", "save", {"extension", "figures"}),  # the figures
], ids=["pgd-batch", "pgd-step", "products", "attack-check", "autoattack", "extension-table", "plots"])
def test_a_change_in_the_computation_recomputes_exactly_its_dependents(copy, path, function, recomputed):
    before = keys()
    if function is None:
        copy(path, "BATCH = 256", "BATCH = 128")
    else:
        add_statement(copy.root / "lib" / path, function)
    assert changed(before, keys()) == recomputed


def test_a_training_parameter_recomputes_its_trainings_and_what_follows():
    before = keys()
    diff = changed(before, keys(study(SMOKE, "ema_rate=0.5")))
    # the centers' EMA rate: C's and F's (F is E plus C's center loss), and what follows each
    assert tasks_of(diff, "train") == {"train-C-200d", "train-F-200d"}
    assert diff == {*(f"{task}-{m}-200d" for m in "CF" for task in ("train", "eps-0", "eps-0.1", "eps-0.3", "evaluate",
                                                                     "autoattack")),
                    "check", "centers", "extension", "figures"}


def test_an_attack_check_parameter_reattacks_nothing_else():
    assert changed(keys(), keys(study(SMOKE, "check_samples=20"))) == {"check", "extension", "figures"}


def test_an_autoattack_parameter_reattacks_nothing_but_autoattack():
    diff = changed(keys(), keys(study(SMOKE, "autoattack_queries=100")))
    assert diff == {*(f"autoattack-{m}-200d" for m in "ABCDEFG"), "extension", "figures"}


def test_each_autoattack_image_count_reattacks_its_own_models_only():
    """A–D and the adversarially trained E–G have an image count each (E–G's images cost the whole cascade)."""
    assert changed(keys(), keys(study(SMOKE, "autoattack_samples=10"))) == \
        {*(f"autoattack-{m}-200d" for m in "ABCD"), "extension", "figures"}
    assert changed(keys(), keys(study(SMOKE, "robust_autoattack_samples=10"))) == \
        {*(f"autoattack-{m}-200d" for m in "EFG"), "extension", "figures"}


def test_a_planner_change_that_alters_what_a_product_computes_changes_its_key(monkeypatch):
    before = keys()
    # the planner decides how many images 'the first attack_samples' is: a value in the key
    real = registry.first_images
    monkeypatch.setattr(registry, "first_images", lambda s, split, n: real(s, split, n) - 1)
    assert changed(before, keys()) == AFTER_ATTACKS


def test_which_images_a_count_selects_is_in_the_key(copy):
    """Which images a count selects is the kernel's (lib.core.data.first), whose code is in the key."""
    before = keys()
    copy("core/data.py", 'return load_split(split == "train").subset(n)',
         'return load_split(split == "train").subset(n + 1)')
    assert changed(before, keys()) == AFTER_ATTACKS


def planned_keys(root, profile: str = SMOKE) -> dict[str, str]:
    """The plan's keys as a fresh process sees the code under `root` (edits of the configuration need a re-import)."""
    script = ("import json; from lib.pipeline import dag; from lib.pipeline.config import study; "
              f"print(json.dumps({{n: t.key for n, t in dag.plan(study({profile!r})).items()}}))")
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)})
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def test_new_parameters_models_and_steps_recompute_nothing_that_exists(copy):
    root = copy.root
    before = keys()
    # a new Study parameter with a default
    copy("pipeline/config.py", "    precision: str = param(",
         "    new_knob: float = param(0.5, NON_NEGATIVE, doc=\"a knob nothing reads\")\n    precision: str = param(")
    # a new step, declared after the others: its notebook and maker
    copy("pipeline/registry.py", "\n)\nSTEPS: dict",
         '\n    Step("summary", "08_summary", "lib.pipeline.steps.summary:summary", runs=once, label=no_label,\n'
         '         key=lambda s, p: {}, inputs=lambda s, p: ["extension"], files=("summary.csv",)),\n)\nSTEPS: dict')
    (root / "lib" / "pipeline" / "steps" / "summary.py").write_text(
        '"""Step `summary`."""\n\n\ndef summary(s, device=None):\n    return None\n')
    shutil.copy(root / "notebooks" / "03_centers.ipynb", root / "notebooks" / "08_summary.ipynb")
    after = planned_keys(root)
    assert changed(before, after) == {"summary"} and set(after) == set(before) | {"summary"}


def test_a_model_added_to_the_study_runs_only_its_own_tasks_and_the_aggregates(copy):
    """D added to a study of A, B and C: its training, ε runs and evaluation, and the steps that gather every
    model; no other model's training, ε run or evaluation."""
    copy("pipeline/config.py", "COMPARED_MODELS = tuple((m, 200) for m in MODELS)",
         "COMPARED_MODELS = tuple((m, 200) for m in MODELS if m != 'D')")
    without_d, with_d = planned_keys(copy.root), keys()
    own = {"train-D-200d", "eps-0-D-200d", "eps-0.1-D-200d", "eps-0.3-D-200d", "evaluate-D-200d", "autoattack-D-200d"}
    assert set(with_d) - set(without_d) == own
    assert changed(without_d, with_d) == own | {"centers", "check", "extension", "figures"}


def test_the_code_of_a_step_is_what_its_maker_reaches_without_the_planner():
    files = {str(p.relative_to(ROOT)) for p in dag.code_files(registry.STEPS["train"])}
    assert {"lib/__init__.py", "lib/pipeline/steps/train.py", "lib/core/train.py", "lib/core/products.py"} <= files
    assert not {"lib/pipeline/config.py", "lib/pipeline/dag.py", "lib/pipeline/registry.py", "lib/pipeline/make.py",
                "lib/analysis/plots.py", "lib/core/inverse.py"} & files
    assert "lib/core/inverse.py" in {str(p.relative_to(ROOT)) for p in dag.code_files(registry.STEPS["eps"])}
    reached = dag.step_code(registry.STEPS["train"], ("lib.core.recipes", "C"))  # C's training: its recipe too
    assert ("lib.core.attacks", "pgd") in reached and ("lib.core.attacks", "BATCH") not in reached
    assert ("lib.core.attacks", "pgd") not in dag.step_code(registry.STEPS["train"], ("lib.core.recipes", "A"))


NEW_MODEL = '''

def pulled_twice(batch: Batch) -> torch.Tensor:
    """A new model's term."""
    return 2 * to_center(batch)


H = Model(Recipe("H", ("center_alpha", "new_weight"), wen_centers, "features",
                 (Term("center_loss", pulled_twice, "new_weight"),)),
          loss="CE + {new_weight:g}·2·L_C", baselines=("B",),
          hyperparameters=(Hyperparameter("new_weight", 0.5, NON_NEGATIVE, "H's weight"),))

'''
DECLARED = "\n\n# --- the declared models, as everything else reads them"


def test_a_new_model_retrains_no_other(copy):
    """A model declared in lib/core/recipes.py, with a hyperparameter of its own, joins the study and re-keys none of
    the other models' tasks: only its own runs and the aggregates."""
    before = keys()
    copy("core/recipes.py", DECLARED, NEW_MODEL + DECLARED)
    copy("core/recipes.py", "from lib.core.rules import Hyperparameter", "from lib.core.rules import NON_NEGATIVE, Hyperparameter")
    after = planned_keys(copy.root)
    assert {n for n in set(after) - set(before)} == {n for n in after if "-H-" in n} != set()
    assert changed(before, after) - set(after).difference(before) == {"centers", "check", "extension", "figures"}


def test_rewording_a_model_or_adding_a_contrast_retrains_nothing(copy):
    """A declaration's loss text and baselines are the report's words, not the training's code: only the steps that
    show them (extension, figures) change."""
    before = keys()
    copy("core/recipes.py", 'loss="CE + {center_weight:g}·L_C", baselines=("A",))',
         'loss="CE + {center_weight:g} · center loss", baselines=("A", "C"))')
    assert changed(before, keys()) == {"extension", "figures"}


def test_the_adversarially_trained_models_join_the_study_without_recomputing_it(copy):
    """E, F and G added to the study (issue 32): their own trainings, ε runs, evaluations and AutoAttacks, and the
    steps that gather every model; none of A–D's."""
    copy("pipeline/config.py", "COMPARED_MODELS = tuple((m, 200) for m in MODELS)",
         "COMPARED_MODELS = tuple((m, 200) for m in MODELS if m not in 'EFG')")
    before, after = planned_keys(copy.root), keys()
    own = {n for n in after if any(f"-{m}-" in n for m in "EFG")}
    assert set(after) - set(before) == own and {"train-E-200d", "train-F-200d", "train-G-200d"} <= own
    assert changed(before, after) == own | {"centers", "check", "extension", "figures"}


def test_a_recipe_change_retrains_that_model_only(copy):
    before = keys()
    copy("core/recipes.py", '"targets",\n                 (Term("center_loss", to_center, "center_weight"),), inverse_features)',
         '"features",\n                 (Term("center_loss", to_center, "center_weight"),), inverse_features)')
    diff = changed(before, keys())
    assert tasks_of(diff, "train") == {n for n in TRAININGS if n.startswith("train-C-")}
    assert "train-C-200d" in diff and not tasks_of(diff, "eps") - {n for n in ALL if "-C-" in n}


def test_train_config_computes_nothing():
    """TrainConfig is opaque to the code hash (lib.pipeline.code.OPAQUE): it may hold values and their checks, and
    nothing a training computes with."""
    methods = {name for name, value in vars(TrainConfig).items() if callable(value) or isinstance(value, property)}
    assert methods <= {"__post_init__", "to_dict", "from_dict", "__init__", "__repr__", "__eq__", "__hash__",
                       "__setattr__", "__delattr__", "__getstate__", "__setstate__", "__match_args__",
                       "__dataclass_fields__", "__dataclass_params__"}, methods
    assert all(name in {f.name for f in dataclasses.fields(TrainConfig)} | set(DECLARED_PARAMETERS)
               for r in RECIPES.values() for name in (*PROTOCOL_PARAMS, *r.params))


def config_fields_read(found: dict) -> set[str]:
    """TrainConfig fields (and declared hyperparameters) that the reached code reads as `config.<field>` or names as
    a term's weight."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)} | set(DECLARED_PARAMETERS)
    read = set()
    for (module, name), _ in found.items():
        parsed = code.load(module)
        for node in (n for stmt in (parsed.definitions.get(name, []) if parsed else []) for n in ast.walk(stmt)):
            if isinstance(node, ast.Attribute) and node.attr in fields and isinstance(node.value, ast.Name) \
                    and node.value.id in {"config", "c"}:
                read.add(node.attr)
    return read


@pytest.mark.parametrize("model", sorted(RECIPES))
def test_a_recipe_names_every_parameter_its_training_reads(model):
    """A field a training reads but its recipe does not list would be missing from its key (a stale product) and
    trained at its default (the wrong value): every `config.<field>` its code reaches is listed."""
    recipe = RECIPES[model]
    found = dag.step_code(registry.STEPS["train"], ("lib.core.recipes", model))
    weights = {term.weight for term in recipe.terms if term.weight}
    assert config_fields_read(found) <= {*PROTOCOL_PARAMS, *recipe.params}, model
    assert weights <= set(recipe.params)


def test_an_unresolved_name_counts_its_whole_module():
    module = code.parse("lib.core.attacks", (ROOT / "lib/core/attacks.py").read_text())
    found = code.reached({("lib.core.attacks", "made_at_run_time")})
    assert {("lib.core.attacks", name) for name in module.definitions} <= set(found)
