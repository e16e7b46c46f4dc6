"""Shared fixtures: the verified MNIST splits and a small model trained once per session."""
from __future__ import annotations

import pytest

from lib.core.data import load_split
from lib.core.protocol import TrainConfig
from lib.core.train import restore, train


@pytest.fixture(scope="session")
def mnist():
    """(train, test) splits, verified against the official MD5s (fetched from the mirror if absent)."""
    return load_split(True), load_split(False)


@pytest.fixture(scope="session")
def small_model(mnist):
    """A SmallCNN trained for one epoch on 6k images (~97 % test accuracy), in eval mode."""
    train_split, test_split = mnist
    config = TrainConfig(model="A", epochs=1, seed=0)
    checkpoint = train(config, train_split.subset(6000), test_split.subset(1000), progress=False)
    model, _ = restore(checkpoint)
    return model


@pytest.fixture(scope="session")
def test_batch(mnist):
    """256 test images as float inputs, with labels."""
    from lib.core.data import to_input

    _, test_split = mnist
    return to_input(test_split.images[:256]), test_split.labels[:256]


# Products and reports of the tests go to a scratch folder, never into the user's runs/ or reports/, and no test
# restores the committed run's carried products (products/).
import os as _os
import tempfile as _tempfile

_scratch = _tempfile.mkdtemp(prefix="invadv-tests-")
_os.environ["INVADV_RUNS"] = _os.path.join(_scratch, "runs")
_os.environ["INVADV_REPORTS"] = _os.path.join(_scratch, "reports")
_os.environ["INVADV_STORE"] = _os.path.join(_scratch, "products")
# Notebooks (nbval, the smoke pipeline) run single-threaded: CPU results are bit-identical only for a
# fixed thread count and kernel set.
_os.environ["INVADV_THREADS"] = "1"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """nbval's kernels compute with another CPU kernel set than the suite's smoke pipeline (AVX2 on an
    AVX-512 machine): the regression check passes on both, which is what makes it portable. Before each test the
    suite's process takes back the background run's core once that run has finished (tests/smoke.py)."""
    from nbval.plugin import IPyNbCell

    from tests.smoke import environment, other_kernels, release_threads

    release_threads()
    if not isinstance(item, IPyNbCell):
        return (yield)
    with environment(**other_kernels()):  # a notebook's kernel starts while its first cell is set up, and inherits these
        return (yield)


def pytest_collection_modifyitems(session, config, items):
    """The tests that read the background smoke run (marker `pipeline`) go last, in their order: the others run
    while it computes, instead of waiting for it."""
    items.sort(key=lambda item: item.get_closest_marker("pipeline") is not None)


def pytest_collection_finish(session):
    """Start the smoke pipeline in the background when a collected test needs it (marker `pipeline`)."""
    if any(item.get_closest_marker("pipeline") for item in session.items):
        from tests import smoke

        smoke.start_in_background()


def pytest_sessionfinish(session, exitstatus):
    from tests import smoke

    smoke.stop_background()
