"""pykan 0.2.8 on keras_kan's continual-learning protocol (examples/continual_learning.py).

Runs under pykan's own interpreter (keras_kan is not imported): five Gaussian bumps
`exp(-300 (x - c)^2)`, c in {-0.8, -0.4, 0, 0.4, 0.8}, shown one region at a time
(`--points` evenly spaced samples over `[c - 0.2, c + 0.2]`), 100 L-BFGS steps per
phase, `KAN([1, 1], grid=200, k=3, base_fun='zero', sp_trainable=False,
sb_trainable=False, noise_scale=0.1)` (pykan's Example 8), float32. Prints the RMSE on
every region seen so far after each phase, as the example does, and the time.

Run: `/path/to/pykan-venv/bin/python benchmarks/continual_vs_pykan.py [--steps 100]`.
"""

import argparse
import time

import numpy as np
import torch
from kan import KAN

CENTERS = (-0.8, -0.4, 0.0, 0.4, 0.8)


def target(x):
    return sum(np.exp(-300.0 * (x - c) ** 2) for c in CENTERS)


def region(p, points):
    return np.linspace(CENTERS[p] - 0.2, CENTERS[p] + 0.2, points)[:, None]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_default_dtype(torch.float32)
    model = KAN(width=[1, 1], grid=200, k=3, noise_scale=0.1, base_fun="zero",
                sp_trainable=False, sb_trainable=False, seed=args.seed, auto_save=False)
    start = time.perf_counter()
    for p in range(5):
        x = torch.tensor(region(p, args.points), dtype=torch.float32)
        y = torch.tensor(target(region(p, args.points)), dtype=torch.float32)
        data = {"train_input": x, "train_label": y, "test_input": x, "test_label": y}
        model.fit(data, opt="LBFGS", steps=args.steps, update_grid=False, log=args.steps + 1)
        errors = []
        for q in range(p + 1):
            xq = region(q, 1000)
            with torch.no_grad():
                pred = model(torch.tensor(xq, dtype=torch.float32)).numpy().astype(np.float64)
            errors.append(float(np.sqrt(np.mean((pred - target(xq)) ** 2))))
        print(f"  after phase {p + 1}: pykan RMSE " + " ".join(f"{e:.1e}" for e in errors),
              flush=True)
    print(f"  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
