"""Rendered batches: peak lists of a dataset drawn as patterns on the model grid. The one helper
training, evaluation and calibration share."""


def grid_axis(grid):
    """The model grid's 2theta axis as the float32 tensor ``render`` takes."""
    import torch

    return torch.tensor(grid.two_theta, dtype=torch.float32)


def render_items(dataset, indices, grid, generator, config=None, max_peaks=256):
    """``(values, masks)`` float32 tensors (len(indices), grid size): the items ``indices`` of a
    ``PeakDataset`` rendered with ``config`` (default ``RenderConfig()``) and ``generator``.
    ``grid`` is a ModelGrid or its axis tensor (``grid_axis``)."""
    from .render import RenderConfig, render

    axis = grid if hasattr(grid, "dtype") else grid_axis(grid)
    d, f2m, cos2 = dataset.batch(indices, max_peaks=max_peaks)
    return render(d, f2m, axis, generator, config=RenderConfig() if config is None else config, cos2=cos2)
