"""Fixtures shared by the model-side tests."""

import pytest


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
