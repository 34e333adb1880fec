"""keras_kan.rng reproduces torch.rand on the CPU (pykan's initial weights and points)."""

import numpy as np
import pytest
from conftest import BACKEND

from keras_kan.rng import torch_rand

# The generator is NumPy (no backend in it): checked once, under PyTorch, where torch is
# loaded already (importing it costs 4-5 s of every other backend's quick run).
if BACKEND != "torch":
    pytest.skip("backend-independent NumPy, checked under the PyTorch backend",
                allow_module_level=True)
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_matches_torch_rand_draw_by_draw(seed):
    shapes = [(5, 3), (7,), (2, 2, 4), (20, 8)]
    ours = torch_rand(seed, *shapes)
    generator = torch.Generator().manual_seed(seed)
    for mine, shape in zip(ours, shapes):
        np.testing.assert_array_equal(np.float32(mine),
                                      torch.rand(shape, generator=generator).numpy())


def test_offset_skips_draws():
    whole = torch_rand(7, (10,))[0]
    np.testing.assert_array_equal(torch_rand(7, (4,), offset=6)[0], whole[6:])
