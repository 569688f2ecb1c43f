"""The scripts of experiments/ as modules, for the tests that run them."""

import importlib.util
from pathlib import Path
from types import ModuleType

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def experiment_module(name: str) -> ModuleType:
    """``experiments/<name>.py`` imported (the directory is not a package)."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
