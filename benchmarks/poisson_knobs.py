"""Which knobs take pykan's Poisson protocol to a mesh MSE of 3e-7 (issue 34).

One run per call: a KAN([2, 2, 1]) trained on `examples/poisson.py`'s problem
through grids 5 -> 10 -> 20 with the knobs given on the command line; one line
per grid is printed and appended (with the knobs) to `--log`.

    KERAS_BACKEND=jax python benchmarks/poisson_knobs.py --recipe 2024 --log knobs.log
    KERAS_BACKEND=jax python benchmarks/poisson_knobs.py --init 0.2.8 --steps 50 ...

`--float64` sets Keras's floatx (and JAX_ENABLE_X64 before JAX loads).
"""

import argparse
import json
import os
import sys
import time


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", choices=("0.2.8", "2024"), default=None,
                   help="start from a named recipe of examples/poisson.py; flags override")
    p.add_argument("--init", choices=("0.2.8", "2024"), default="0.2.8")
    p.add_argument("--noise-scale-base", type=float, default=0.25)
    p.add_argument("--noise-scale", type=float, default=None)
    p.add_argument("--bias", action="store_true")
    p.add_argument("--grid-eps", type=float, default=0.02)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--update-every", type=int, default=5)
    p.add_argument("--stop-update", type=int, default=20)
    p.add_argument("--grids", default="5,10,20")
    p.add_argument("--n", type=int, default=51)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--float64", action="store_true")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log", default=None)
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    if args.float64:
        os.environ["JAX_ENABLE_X64"] = "1"
    os.environ.setdefault("KERAS_BACKEND", "jax")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "examples"))
    import keras

    if args.float64:
        keras.config.set_floatx("float64")
    import poisson

    recipe = dict(poisson.RECIPES["0.2.8"] if args.recipe is None else
                  poisson.RECIPES[args.recipe])
    if args.recipe is None:
        recipe.update(init=args.init, noise_scale_base=args.noise_scale_base,
                      use_bias=args.bias, grid_eps=args.grid_eps, steps=args.steps,
                      update_every=args.update_every, stop_update=args.stop_update)
        if args.noise_scale is not None:
            recipe["noise_scale"] = args.noise_scale
    recipe.update(alpha=args.alpha)
    grids = tuple(int(g) for g in args.grids.split(","))
    mesh, boundary, source = poisson.problem(args.n)
    start = time.perf_counter()
    _, rows = poisson.train_kan(mesh, boundary, source, grids, seed=args.seed, recipe=recipe)
    record = dict(recipe, backend=keras.backend.backend(), floatx=keras.config.floatx(),
                  n=args.n, seed=args.seed, mse={g: m for g, m, _ in rows},
                  seconds=round(time.perf_counter() - start, 1))
    print(json.dumps(record))
    if args.log:
        with open(args.log, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
