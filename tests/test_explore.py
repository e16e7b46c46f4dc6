"""The explorer: its computations, and the notebook run headless on the smoke profile."""
import pytest
import torch

from lib.core.protocol import model_name
from lib.pipeline import dag, explore, runner
from lib.pipeline.config import study
from tests.smoke import copy_of_smoke_runs, environment

EXPLORED = ("train", "eps")  # the steps whose products the explorer reads


@pytest.fixture
def smoke_runs(tmp_path):
    """A copy of the suite's smoke products the explorer reads as the runs folder (it writes new ε runs there)."""
    with environment(INVADV_RUNS=str(copy_of_smoke_runs(tmp_path / "runs", EXPLORED))):
        yield tmp_path / "runs"


def test_projection_puts_the_class_mean_at_the_origin_and_keeps_in_plane_points():
    torch.manual_seed(0)
    plane = torch.randn(2, 5)
    features = torch.randn(200, 2) * torch.tensor([3.0, 1.0]) @ plane + 7  # a class spread on a 2-D plane
    cloud, points = explore.project(features, {"mean": features.mean(0), "member": features[3]})
    assert points["mean"].abs().max() < 1e-5
    # distances within the plane survive the projection
    assert torch.allclose((points["member"] - points["mean"]).norm(), (features[3] - features.mean(0)).norm(), atol=1e-4)
    assert cloud.shape == (200, 2)


def test_inspect_at_eps_zero_changes_nothing_and_lowers_the_loss_otherwise(small_model, test_batch):
    x, y = test_batch[0][:1], int(test_batch[1][0])
    same = explore.inspect(small_model, x, y, 0.0, 0.01, 10)
    assert torch.equal(same["clean"], same["adversarial"]) and torch.equal(same["probs_before"], same["probs_after"])
    moved = explore.inspect(small_model, x, y, 0.1, 0.01, 10)
    assert moved["probs_after"][y] >= moved["probs_before"][y]  # an inverse adversary is more confident
    assert moved["perturbation"].abs().max() <= 0.1 + 1e-6


@pytest.mark.slow
@pytest.mark.pipeline(*EXPLORED)
def test_explorer_runs_headless_and_saves_its_view(tmp_path, smoke_runs):
    import papermill

    papermill.execute_notebook(dag.NOTEBOOKS / "explore.ipynb", tmp_path / "explore.ipynb",
                               parameters={"profile": "smoke", "eps": 0.1, "digit_class": 7, "interactive": False},
                               kernel_name=runner.KERNEL, cwd=str(dag.NOTEBOOKS), progress_bar=False,
                               execution_timeout=600)  # a hung cell fails the test instead of the CI run
    view = dag.reports_dir() / "figures" / "explore-smoke.png"
    assert view.stat().st_size > 20_000


@pytest.mark.slow
@pytest.mark.pipeline(*EXPLORED)
def test_explorer_offers_every_attacked_model_bounds_the_digit_and_finds_computed_eps(smoke_runs):
    s = study("smoke")
    ui = explore.Explorer(s, torch.device("cpu"))
    assert list(ui.models) == [model_name(m, d) for m, d in s.models()]  # the menu: every model of the first seed
    assert "G-200d" in ui.models and "G-200d" not in ui.attacked  # G has no ε runs: shown without its center
    g = ui.state("G-200d", 3, 0.1, 0)
    assert "adversarial center (ε)" not in g["points"] and "no adversarial center" in ui.caption(g)
    n = len(ui.indices(3))
    last = ui.state("C-200d", 3, 0.1, n - 1)
    assert (last["index"], last["count"]) == (n - 1, n)
    assert ui.caption(last).startswith(f"C-200d · class 3: digit {n} of {n} (image #{last['position']} of the test split)")
    with pytest.raises(ValueError, match=f"class 3 has {n} digits .* index must be in 0..{n - 1}, got {n}"):
        ui.state("C-200d", 3, 0.1, n)  # no silent wrap-around to another digit
    assert explore.computed_eps(s) == list(s.eps)
    ui.eps_run(0.2)  # what the button does: the ε run stored beside the others
    assert explore.computed_eps(s) == sorted([*s.eps, 0.2])
    assert explore.Explorer(s, torch.device("cpu")).eps_grid == sorted([*s.eps, 0.2])  # a new session finds it
