"""Random numbers that match pykan's: the CPU `torch.rand` stream, in NumPy.

`torch.manual_seed(s)` seeds an MT19937 generator exactly as
`numpy.random.RandomState(s)` does, and `torch.rand` turns each 32-bit word
into a float by keeping its low 24 bits. Drawing the same words here gives the
same numbers without importing torch, on every Keras backend, so a keras_kan
model or data set made with seed `s` equals pykan's made with seed `s`.
"""

import numpy as np

__all__ = ["torch_rand"]


def torch_rand(seed, *shapes, offset=0):
    """`U[0, 1)` float64 arrays equal to successive `torch.rand(*shape)` calls.

    Args:
        seed: int, as given to `torch.manual_seed`.
        *shapes: one shape per array, drawn in order from the same stream.
        offset: numbers to skip first (draws made earlier from the stream).

    Returns:
        a list of arrays, one per shape (values are exact float32 numbers).
    """
    stream = np.random.RandomState(int(seed))
    if offset:
        stream.randint(0, 2**32, size=int(offset), dtype=np.uint64)
    out = []
    for shape in shapes:
        words = stream.randint(0, 2**32, size=shape, dtype=np.uint64)
        out.append((words & (2**24 - 1)).astype(np.float64) * 2.0**-24)
    return out
