"""Models as recipes: the epoch loop that reads them trains A–D bit for bit as the loop that named each model did
(issue 32), and a recipe declares what its training needs."""
import pytest
import torch
import torch.nn.functional as F

from lib.core.data import batches
from lib.core.losses import AdversarialCenters, pull
from lib.core.precision import autocast
from lib.core.protocol import ADVERSARIALLY_TRAINED, MODELS, TrainConfig
from lib.core.recipes import RECIPES, inverse_features, recipe
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
    assert tuple(RECIPES) == MODELS
    for name, r in RECIPES.items():
        assert r.model == name and r.centers_from in ("features", "targets")
        assert r.centers_from == "features" or r.targets is not None  # centers from targets it makes
    assert isinstance(recipe("C").centers(TrainConfig(model="C")), AdversarialCenters)
    # the planner knows the adversarially trained models by name (their AutoAttack images, their ε runs)
    assert ADVERSARIALLY_TRAINED == tuple(m for m, r in RECIPES.items() if r.inputs is not None)
    with pytest.raises(KeyError, match="no recipe for model 'Z'.*lib/core/recipes.py"):
        recipe("Z")
