"""Training: one step against a hand-written step, determinism, checkpoints, config validation."""
import pytest
import torch
import torch.nn.functional as F

from lib.core.data import Split, to_input
from lib.core.products import save as save_checkpoint
from lib.core.protocol import TrainConfig
from lib.core.train import build, load_checkpoint, restore, train


@pytest.fixture(scope="module")
def tiny(mnist):
    train_split, test_split = mnist
    return train_split.subset(128), test_split.subset(200)


def manual_step(config: TrainConfig, split: Split):
    """One SGD step on one batch of 128, written out by hand from docs/study.md §2–§3."""
    model, centers = build(config)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(config.seed))
    x, y = to_input(split.images[order]), split.labels[order]
    model.train()
    f = model.features(x)
    loss = F.cross_entropy(model.classify(f), y)
    loss = loss + (0.0 if config.model == "A" else config.center_weight) * 0.5 * (f - centers.centers[y]).pow(2).sum(1).mean()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    loss.backward()
    optimizer.step()
    centers.update(f, y)
    return model, centers


@pytest.mark.parametrize("name, lam", [("A", 0.0), ("B", 0.1)])
def test_one_step_matches_the_protocol(tiny, name, lam):
    train_split, test_split = tiny
    config = TrainConfig(model=name, center_weight=lam or 0.1, epochs=1, seed=3)
    checkpoint = train(config, train_split, test_split, progress=False)
    model, centers = manual_step(config, train_split)
    for key, value in model.state_dict().items():
        assert torch.allclose(checkpoint["model"][key], value, atol=1e-6), key
    assert torch.allclose(checkpoint["centers"], centers.centers, atol=1e-6)


def test_center_loss_changes_the_weights_of_model_b_only(tiny):
    train_split, test_split = tiny
    a = train(TrainConfig(model="A", epochs=1, seed=3), train_split, test_split, progress=False)
    b = train(TrainConfig(model="B", center_weight=0.1, epochs=1, seed=3), train_split, test_split, progress=False)
    assert not torch.allclose(a["model"]["classifier.fc2.weight"], b["model"]["classifier.fc2.weight"])
    assert a["history"][0]["loss"] == a["history"][0]["ce"]  # A only tracks its centers
    assert b["history"][0]["loss"] == pytest.approx(b["history"][0]["ce"] + 0.1 * b["history"][0]["center_loss"])


def test_training_is_deterministic_on_cpu(mnist):
    train_split, test_split = mnist
    config = TrainConfig(model="B", epochs=2, seed=5)
    runs = [train(config, train_split.subset(512), test_split.subset(200), progress=False) for _ in range(2)]
    for key in runs[0]["model"]:
        assert torch.equal(runs[0]["model"][key], runs[1]["model"][key]), key
    assert torch.equal(runs[0]["centers"], runs[1]["centers"])
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]
    assert strip(runs[0]["history"]) == strip(runs[1]["history"])
    assert [e["epoch"] for e in runs[0]["history"]] == [1, 2]
    assert set(runs[0]["history"][0]) == {"epoch", "ce", "center_loss", "loss", "train_acc_running", "test_acc", "seconds"}


def test_checkpoint_round_trip(tiny, tmp_path):
    train_split, test_split = tiny
    config = TrainConfig(model="B", epochs=1, seed=1)
    checkpoint = train(config, train_split, test_split, progress=False)
    path = tmp_path / "ckpt" / "b.pt"
    save_checkpoint(checkpoint, path)
    assert [p.name for p in path.parent.iterdir()] == ["b.pt"]  # no temporary left behind
    loaded = load_checkpoint(path, expected=config)
    assert loaded["config"] == config.to_dict() and loaded["history"] == checkpoint["history"]
    assert {"commit", "packages", "device", "python", "created"} <= set(loaded["provenance"])
    model, centers = restore(loaded)
    assert not model.training and torch.equal(centers.centers, checkpoint["centers"])
    x = to_input(test_split.images[:8])
    with torch.no_grad():
        original, _ = restore(checkpoint)
        assert torch.equal(model(x), original(x))


def test_checkpoint_with_other_config_is_refused(tiny, tmp_path):
    train_split, test_split = tiny
    checkpoint = train(TrainConfig(model="B", epochs=1), train_split, test_split, progress=False)
    save_checkpoint(checkpoint, tmp_path / "b.pt")
    with pytest.raises(ValueError, match=r"another config.*center_weight"):
        load_checkpoint(tmp_path / "b.pt", expected=TrainConfig(model="B", epochs=1, center_weight=0.5))


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"model": {"w": torch.ones(1000)}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match="unreadable"):
        load_checkpoint(path)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "Z"}, "model must be one of"),
    ({"feature_dim": 0}, "feature_dim must be"),
    ({"center_weight": -1.0}, "center_weight"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"epochs": 0}, "epochs must be"),
    ({"lr": 0.0}, "lr must be"),
])
def test_bad_config_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_unknown_config_key_is_named():
    with pytest.raises(ValueError, match="unknown parameter.*'lambda'"):
        TrainConfig.from_dict({"lambda": 0.1})


@pytest.mark.parametrize("name", ["C", "D"])
def test_c_and_d_with_zero_weight_train_exactly_like_a(tiny, name):
    """The inverse adversaries are targets only: at λ = 0 they change nothing (no gradient, no RNG draw)."""
    train_split, test_split = tiny
    a = train(TrainConfig(model="A", epochs=1, seed=3), train_split, test_split, progress=False)
    x = train(TrainConfig(model=name, center_weight=0.0, epochs=1, seed=3, train_steps=2), train_split, test_split,
              progress=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], x["model"][key]), key


def inverse_targets(config: TrainConfig, split: Split):
    """The first batch's inverse adversaries' features, made by hand (eval mode, PGD descending CE)."""
    from lib.core.attacks import inverse_adversary

    model, _ = build(config)
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(config.seed))
    x, y = to_input(split.images[order]), split.labels[order]
    x_inv = inverse_adversary(model, x, y, config.train_eps, config.train_step_size, config.train_steps)
    with torch.no_grad():
        return model.eval().features(x_inv), model.train(), x, y


@pytest.mark.parametrize("name", ["C", "D"])
def test_one_step_of_c_and_d_matches_a_hand_written_step(tiny, name):
    train_split, test_split = tiny
    config = TrainConfig(model=name, center_weight=0.5, epochs=1, seed=3, train_steps=3, train_step_size=0.05)
    targets, model, x, y = inverse_targets(config, train_split)
    _, centers = build(config)
    f = model.features(x)
    if name == "C":  # first batch: each class's center is its inverse adversaries' feature mean
        from lib.core.centers import class_means

        centers.centers.copy_(class_means(targets, y))
        targets = centers.centers[y]
    loss = F.cross_entropy(model.classify(f), y) + 0.5 * 0.5 * (f - targets).pow(2).sum(1).mean()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    loss.backward()
    optimizer.step()
    checkpoint = train(config, train_split, test_split, progress=False)
    for key, value in model.state_dict().items():
        assert torch.allclose(checkpoint["model"][key], value, atol=1e-6), key
    if name == "C":  # C's centers are the adversarial ones, not Wen's update of the clean features
        assert torch.allclose(checkpoint["centers"], centers.centers, atol=1e-6)
