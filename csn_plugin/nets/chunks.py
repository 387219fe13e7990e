"""The network (or any batch function) called in chunks: the one copy of that loop."""


def in_chunks(function, values, masks, size):
    """``function(values[i:i+size], masks[i:i+size])`` over the rows, results concatenated.

    ``function`` returns one array/tensor or a tuple of them (a tuple element may be None, e.g. a
    network without a rule head); torch tensors are joined with ``torch.cat``, numpy arrays with
    ``numpy.concatenate``. Row-wise functions give the same rows as one call on everything, in
    less memory (and on CPU, chunks of 64 stay in cache).
    """
    outputs = [function(values[start:start + size], masks[start:start + size]) for start in range(0, len(values), size)]
    if not isinstance(outputs[0], tuple):
        return _join([output for output in outputs])
    return tuple(None if outputs[0][k] is None else _join([output[k] for output in outputs]) for k in range(len(outputs[0])))


def _join(parts):
    if type(parts[0]).__module__.startswith("torch"):
        import torch

        return torch.cat(parts)
    import numpy as np

    return np.concatenate(parts)
