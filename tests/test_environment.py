"""The environment: one source of pins, mirrored by environment.yml; the package imports."""
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from pins import pins  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def conda_pip_pins() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return [p for p in pip_section if not p.startswith("-e")]


def test_environment_yml_mirrors_pyproject():
    # torchattacks is installed separately with --no-deps (pyproject's [tool.invadv] runtime-no-deps).
    assert sorted(conda_pip_pins()) == sorted(pins("main") + pins("test") + pins("workflow"))


def test_every_pin_is_exact():
    for requirement in pins("all"):
        assert "==" in requirement, f"{requirement} is not pinned with =="


def test_installed_versions_match_pins():
    for requirement in pins("all"):
        name, wanted = requirement.split("==")
        installed = importlib.metadata.version(name)
        # torch reports a local build tag (e.g. 2.14.1+cu130).
        assert installed.split("+")[0] == wanted, f"{name}: installed {installed}, pinned {wanted}"


def test_pins_cli_rejects_unknown_group():
    result = subprocess.run([sys.executable, str(ROOT / "tools/pins.py"), "nope"], capture_output=True, text=True)
    assert result.returncode != 0 and "unknown pin group" in result.stderr


def test_project_kernel_runs_the_project_environment():
    """papermill, nbval and JupyterLab find the kernel `make` registered, pointing at this Python."""
    import json

    listing = subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
                             capture_output=True, text=True, check=True)
    specs = json.loads(listing.stdout)["kernelspecs"]
    assert "invadv-centers" in specs, "project kernel missing: run `make env` to register it"
    argv0 = Path(specs["invadv-centers"]["spec"]["argv"][0])
    assert argv0.resolve() == Path(sys.executable).resolve() or argv0.parent == Path(sys.executable).parent
