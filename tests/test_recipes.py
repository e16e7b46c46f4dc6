"""Models as recipes: the epoch loop that reads them trains A–D bit for bit as the loop that named each model did
(issue 32), and a recipe declares what its training needs."""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from lib import ROOT
from lib.core.data import batches
from lib.core.losses import AdversarialCenters, pull
from lib.core.precision import autocast
from lib.core.errors import ConfigError
from lib.core.protocol import DECLARED_MODELS, TrainConfig
from lib.core.recipes import (ADVERSARIALLY_TRAINED, DECLARATIONS, MODELS, RECIPES, Model, contrasts, declaration,
                              inverse_features, loss_text, recipe)
from lib.core.rules import NON_NEGATIVE, Hyperparameter
from lib.core.train import build, train_epoch


def epoch_by_model_letter(model, centers, optimizer, split, config: TrainConfig, generator) -> None:
    """One epoch as lib.core.train ran it before recipes: a branch per model letter (commit b2d6911)."""
    model.train()
    weight = 0.0 if config.model == "A" else config.center_weight
    for x, y in batches(split, config.batch_size, shuffle=True, generator=generator):
        inverse = inverse_features(model, x, y, config) if config.model in ("C", "D") else None
        if config.model == "C":
            centers.update(inverse, y)
        with autocast(config.precision, x.device):
            features = model.features(x)
            logits = model.classify(features)
            features = features.float()
        ce = F.cross_entropy(logits.float(), y)
        center = pull(features, inverse) if config.model == "D" else centers(features, y)
        loss = ce + weight * center if weight > 0 else ce
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if config.model != "C":
            centers.update(features, y)


def one_epoch(config: TrainConfig, split, epoch) -> tuple[dict, torch.Tensor]:
    model, centers = build(config)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    torch.manual_seed(config.seed + 1)  # the dropout stream, the same for both loops
    epoch(model, centers, optimizer, split, config, torch.Generator().manual_seed(config.seed))
    return model.state_dict(), centers.centers.clone()


@pytest.mark.parametrize("name", "ABCD")  # the models the loop branched on (E–G came with recipes)
def test_the_recipe_loop_trains_each_model_bit_for_bit_as_before(mnist, name):
    split = mnist[0].subset(384)
    config = TrainConfig(model=name, seed=4, center_weight=0.1, train_steps=2, train_step_size=0.05)
    ours, our_centers = one_epoch(config, split, train_epoch)
    theirs, their_centers = one_epoch(config, split, epoch_by_model_letter)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), (name, key)
    assert torch.equal(our_centers, their_centers)


def test_each_model_has_one_recipe_named_by_it():
    assert tuple(RECIPES) == MODELS == tuple(DECLARED_MODELS) == tuple(DECLARATIONS) == tuple("ABCDEFG")
    for name, r in RECIPES.items():
        assert r.model == name and r.centers_from in ("features", "targets")
        assert r.centers_from == "features" or r.targets is not None  # centers from targets it makes
    assert isinstance(recipe("C").centers(TrainConfig(model="C")), AdversarialCenters)
    # the planner knows the adversarially trained models by name (their AutoAttack images, their ε runs)
    assert ADVERSARIALLY_TRAINED == tuple(m for m, r in RECIPES.items() if r.inputs is not None)
    with pytest.raises(KeyError, match="no recipe for model 'Z'.*lib/core/recipes.py"):
        recipe("Z")


def test_the_declarations_give_each_model_its_loss_text_and_contrasts():
    """The report's loss column and the contrasts come from the declarations (once, in lib/core/recipes.py)."""
    assert loss_text(TrainConfig(model="B").to_dict()) == "CE + 0.01·L_C"
    assert loss_text(TrainConfig(model="G").to_dict()) == ("CE on adversarial examples (pgd, 5 step(s), ε=0.3) + "
                                                          "1·KL to own inverse adversary's output (ε=0.1, T=2)")
    for letter in MODELS:  # every loss text fills from a config of its model
        assert loss_text(TrainConfig(model=letter).to_dict())
    assert set(contrasts()) == {("B", "A"), ("C", "B"), ("C", "A"), ("D", "B"), ("D", "A"), ("F", "E"), ("F", "G"),
                                ("G", "E")}
    assert declaration("F").adversarially_trained and not declaration("C").adversarially_trained
    with pytest.raises(ConfigError, match="no model 'Z' is declared"):
        declaration("Z")


def test_a_declared_hyperparameter_must_reach_the_training_key():
    """A hyperparameter its recipe does not read (name in params) would be missing from the training's key."""
    base = DECLARATIONS["B"].recipe
    with pytest.raises(ConfigError, match=r"model B: hyperparameter\(s\) \['h_rate'\] must be named"):
        Model(base, "CE", hyperparameters=(Hyperparameter("h_rate", 0.5, NON_NEGATIVE, "a rate"),))


def test_a_declared_hyperparameter_becomes_a_train_config_field():
    """In a fresh interpreter (it changes TrainConfig for the process): registered, a hyperparameter is a field with
    its default and rule, which every module that imported TrainConfig sees."""
    script = """
from lib.core import protocol, train
from lib.core.protocol import TrainConfig, register
from lib.core.errors import ConfigError
from lib.core.rules import NON_NEGATIVE, Hyperparameter
register(protocol.DECLARED_MODELS, [Hyperparameter("h_rate", 0.5, NON_NEGATIVE, "a rate")])
config = TrainConfig.from_dict({"model": "B", "h_rate": 0.25})
assert config.h_rate == 0.25 and TrainConfig(model="B").h_rate == 0.5 and train.TrainConfig is TrainConfig
assert config.to_dict()["h_rate"] == 0.25 and TrainConfig.from_dict(config.to_dict()) == config
try:
    TrainConfig(model="B", h_rate=-1.0)
except ConfigError as e:
    assert "h_rate must be >= 0" in str(e)
else:
    raise AssertionError("no error")
try:
    register(protocol.DECLARED_MODELS, [Hyperparameter("lr", 0.1, NON_NEGATIVE, "shadows a field")])
except ConfigError as e:
    assert "is a TrainConfig field already" in str(e)
else:
    raise AssertionError("no error")
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
    with pytest.raises(ConfigError, match=r"model must be one of the declared models \('A', 'B'"):
        TrainConfig(model="Z")
