"""Fixtures shared by the model-side tests, and the shared helper modules: the crystallography
tests' ``crystallography_cases.py`` (also read by benchmarks/bench_indexing.py) and the throwaway
plugins' classifier source ``throwaway_sources.py``, registered here once so that test modules
simply ``import crystallography_cases`` / ``from throwaway_sources import PROJECTION`` under
pytest's importlib mode."""

import importlib.util
import sys
from pathlib import Path

import pytest

for _name in ("crystallography_cases", "throwaway_sources"):
    if _name not in sys.modules:
        _spec = importlib.util.spec_from_file_location(_name, Path(__file__).with_name(f"{_name}.py"))
        sys.modules[_name] = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(sys.modules[_name])


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread(request):
    """Tiny tensors run faster on one thread than on two contending ones; modules that mark
    themselves with ``pytestmark = pytest.mark.one_thread`` get it."""
    if request.node.get_closest_marker("one_thread") is None:
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dataset_dir(tmp_path_factory):
    """A real 40-item peak-list dataset built once per test session."""
    from csn_plugin.synth.dataset import build_dataset

    directory = tmp_path_factory.mktemp("tiny-dataset")
    build_dataset(directory, count=40, seed=1, workers=1, progress=False)
    return directory
