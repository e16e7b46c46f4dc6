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
    """Before each test the background work advances (tests/smoke.py): the follow-ups start once the smoke run has
    made what they read, and the suite's process takes back the background's core once nothing runs there. A test
    marked `pipeline("train", ...)` starts once those steps are made. nbval's notebooks display the smoke run's
    products: each one's kernel starts once the run has made its step (and so what the step reads), on the run's
    folder, with its kernel set, while the run computes the steps after it."""
    from nbval.plugin import IPyNbCell

    from tests.smoke import PIPELINE_RUNS, advance, environment, nbval_step, smoke_kernels, wait_for_steps

    advance()
    marker = item.get_closest_marker("pipeline")
    if marker is not None and marker.args:  # what the marker names is what the test may read
        wait_for_steps(*marker.args)
    if not isinstance(item, IPyNbCell):
        return (yield)
    wait_for_steps(nbval_step(item.path))
    # a notebook's kernel starts while its first cell is set up, and inherits these
    with environment(INVADV_RUNS=str(PIPELINE_RUNS), **smoke_kernels()):
        return (yield)


def pytest_collection_modifyitems(session, config, items):
    """nbval's notebooks read the background smoke run (they get the marker `pipeline`): they and the tests marked so
    go last. First the tests that read only some steps (`pipeline("train", "eps")`) and the notebooks, together, in
    the order the run makes their steps (smoke.ready_rank): each starts as soon as its steps are made, instead of
    waiting behind one that reads a later step (measured: the AutoAttack test held the explorer's tests and the
    first notebooks for 210 s while the run computed the attack check and the AutoAttacks). Then the other tests,
    then those whose follow-up job computes meanwhile (tests/smoke.py). The unit tests run while the smoke study
    computes, instead of waiting for it."""
    from nbval.plugin import IPyNbCell

    from tests import smoke

    for item in items:
        if isinstance(item, IPyNbCell):
            item.add_marker(pytest.mark.pipeline)
    following = smoke.follow_up_modules()

    def order(item) -> tuple[int, int]:
        marker = item.get_closest_marker("pipeline")
        if marker is None:
            return 0, 0
        if isinstance(item, IPyNbCell):  # each notebook once its step is made
            return 1, smoke.ready_rank([smoke.nbval_step(item.path)])
        if marker.args:  # reads only the steps it names: while the run computes the others (smoke.wait_for_steps)
            return 1, smoke.ready_rank(marker.args)
        return (4 if getattr(item, "module", None) and item.module.__name__ in following else 3), 0

    items.sort(key=order)  # stable: a notebook's cells stay in order, and so do tests of one rank


def pytest_collection_finish(session):
    """Start the smoke pipeline in the background when a collected test needs it (marker `pipeline`)."""
    if any(item.get_closest_marker("pipeline") for item in session.items):
        from tests import smoke

        smoke.start_in_background({item.module.__name__ for item in session.items if hasattr(item, "module")})


def pytest_sessionfinish(session, exitstatus):
    from tests import smoke

    smoke.stop_background()
