"""Centers and metrics against NumPy references, edge cases included."""
import numpy as np
import pytest
import torch

from lib.core import centers as C


def numpy_cosine(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture
def random_features():
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.arange(10), rng.integers(0, 10, size=290)])
    labels[labels == 7] = 8
    labels[0] = 7  # class 7 has exactly one sample
    return rng.normal(size=(300, 16)).astype(np.float64), labels


def test_class_means_against_numpy(random_features):
    f, y = random_features
    means = C.class_means(torch.from_numpy(f), torch.from_numpy(y))
    expected = np.stack([f[y == c].mean(axis=0) for c in range(10)])
    np.testing.assert_allclose(means.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(means[7].numpy(), f[0])  # one sample: the mean is that sample


def test_empty_class_is_an_error():
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no samples"):
        C.class_means(torch.ones(3, 2), torch.tensor([0, 1, 1]), num_classes=3)


def test_cosine_and_mse_against_numpy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 200)), rng.normal(size=(10, 200))
    result = C.compare(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(result["cosine"].numpy(), numpy_cosine(a, b), rtol=1e-12)
    np.testing.assert_allclose(result["mse"].numpy(), ((a - b) ** 2).mean(axis=1), rtol=1e-12)
    assert result["mean_cosine"].item() == pytest.approx(numpy_cosine(a, b).mean())
    assert result["mean_mse"].item() == pytest.approx(((a - b) ** 2).mean())


def test_cosine_of_a_zero_vector_is_defined_as_zero():
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    result = C.cosine(a, b)
    assert not torch.isnan(result).any()
    assert result.tolist() == [0.0, 0.0, 0.0]
    assert C.cosine(torch.tensor([[2.0, 0.0]]), torch.tensor([[5.0, 0.0]])).item() == pytest.approx(1.0)
    assert C.cosine(torch.tensor([[1e-30, 0.0]]), torch.tensor([[1e-30, 0.0]])).item() == pytest.approx(1.0)


def test_compare_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        C.compare(torch.ones(10, 3), torch.ones(10, 4))


def test_sample_cosine_against_numpy(random_features):
    f, y = random_features
    reference = np.random.default_rng(2).normal(size=(10, 16))
    expected = np.mean([numpy_cosine(f[i], reference[y[i]]) for i in range(len(f))])
    got = C.sample_cosine(torch.from_numpy(f), torch.from_numpy(y), torch.from_numpy(reference))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_scatter_and_compactness_against_numpy(random_features):
    f, y = random_features
    means = np.stack([f[y == c].mean(axis=0) for c in range(10)])
    within = np.mean(((f - means[y]) ** 2).sum(axis=1))
    between = np.mean([((means[i] - means[j]) ** 2).sum() for i in range(10) for j in range(10) if i != j])
    ft, yt = torch.from_numpy(f), torch.from_numpy(y)
    assert C.within_class_scatter(ft, yt).item() == pytest.approx(within, rel=1e-10)
    assert C.compactness(ft, yt).item() == pytest.approx(within / between, rel=1e-10)
    assert C.compactness(3 * ft, yt).item() == pytest.approx(within / between, rel=1e-10)  # scale-free


def test_extract_features_in_eval_mode_and_batched(small_model, test_batch):
    x, _ = test_batch
    small_model.train()
    try:
        f = C.extract_features(small_model, x, batch_size=100)
        assert small_model.training  # mode restored
    finally:
        small_model.eval()
    with torch.no_grad():
        assert torch.allclose(f, small_model.features(x), atol=1e-5)


def test_references_and_snapshot(small_model, mnist):
    _, test_split = mnist
    split = test_split.subset(300)
    buffer = torch.rand(10, 200)
    refs = C.references(small_model, buffer, {"test": split})
    from lib.core.data import to_input

    with torch.no_grad():
        expected = C.class_means(small_model.features(to_input(split.images)), split.labels)
    assert torch.allclose(refs["feature_mean_test"], expected, atol=1e-5)
    assert torch.equal(refs["weight"], small_model.class_weights.detach()) and torch.equal(refs["center"], buffer)
    snap = C.snapshot(small_model, split)
    assert snap["features"].shape == (300, 200) and torch.allclose(snap["means"], expected, atol=1e-5)
