"""pykan 0.2.8 on the Poisson protocol of `examples/poisson.py`, for a side-by-side number.

    /path/to/pykan-venv/bin/python benchmarks/poisson_vs_pykan.py [--steps 50]

Runs in an environment with `pykan==0.2.8` and `torch` (keras_kan is not
needed): KAN([2, 2, 1]), grid 5 -> 10 -> 20, 50 L-BFGS steps per grid (pykan's
LBFGS with the tolerances of its tutorial), grid updates on the 51 x 51 mesh at
steps 0, 5, 10, 15 of each stage, loss 0.01 * mean(residual^2) +
mean(u(boundary)^2), the Laplacian from torch.autograd. Prints the mesh MSE
per grid and the time; compare with `python examples/poisson.py`.
"""

import argparse
import os
import tempfile
import time

import numpy as np
import torch
from kan import KAN, LBFGS


def problem(n=51):
    line = np.linspace(-1.0, 1.0, n)
    gx, gy = np.meshgrid(line, line, indexing="ij")
    mesh = np.stack([gx.ravel(), gy.ravel()], 1)
    one = np.ones(n)
    boundary = np.concatenate([np.stack([-one, line], 1), np.stack([one, line], 1),
                               np.stack([line, -one], 1), np.stack([line, one], 1)])
    return (torch.tensor(mesh, dtype=torch.float32), torch.tensor(boundary, dtype=torch.float32))


def exact(x):
    return torch.sin(np.pi * x[:, :1]) * torch.sin(np.pi * x[:, 1:])


def laplacian(model, x):
    x = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(model(x).sum(), x, create_graph=True)[0]
    return sum(torch.autograd.grad(grad[:, i].sum(), x, create_graph=True)[0][:, i:i + 1]
               for i in range(x.shape[1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_default_dtype(torch.float32)
    mesh, boundary = problem()
    source = -2 * np.pi**2 * exact(mesh)
    model = None
    workdir = tempfile.mkdtemp()
    os.chdir(workdir)  # pykan writes checkpoints to ./model
    start_all = time.perf_counter()
    for grid in (5, 10, 20):
        start = time.perf_counter()
        if model is None:
            model = KAN(width=[2, 2, 1], grid=grid, k=3, seed=args.seed, auto_save=False)
        else:
            model.save_act = True
            model.get_act(mesh)
            model = model.refine(grid)
        model = model.speed()
        optimizer = LBFGS(model.parameters(), lr=1, history_size=10, line_search_fn="strong_wolfe",
                          tolerance_grad=1e-32, tolerance_change=1e-32, tolerance_ys=1e-32)

        def closure(model=model, optimizer=optimizer):
            optimizer.zero_grad()
            pde = torch.mean((laplacian(model, mesh) - source) ** 2)
            loss = 0.01 * pde + torch.mean(model(boundary) ** 2)
            loss.backward()
            return loss

        for step in range(args.steps):
            if step % 5 == 0 and step < 20:
                model.update_grid_from_samples(mesh)
            optimizer.step(closure)
        with torch.no_grad():
            mse = float(torch.mean((model(mesh) - exact(mesh)) ** 2))
        print(f"  pykan 0.2.8 grid {grid:>3}: mesh MSE {mse:.2e}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    print(f"  total {time.perf_counter() - start_all:.1f} s")


if __name__ == "__main__":
    main()
