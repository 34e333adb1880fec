"""keras_kan: Kolmogorov–Arnold Networks for Keras 3 (TensorFlow, JAX, PyTorch)."""

from keras_kan import callbacks, datasets
from keras_kan.layers import KANDense
from keras_kan.lbfgs import fit_lbfgs
from keras_kan.models import KAN
from keras_kan.plotting import plot_kan
from keras_kan.regularizers import KANRegularizer
from keras_kan.surgery import prune, refine, sync_grids, update_grids

__version__ = "0.1.0"


def __getattr__(name):
    # `keras_kan.export` loads on first use: importing it here would make
    # `python -m keras_kan.export` run a module that is already imported.
    if name == "export":
        import importlib

        return importlib.import_module("keras_kan.export")
    raise AttributeError(f"module 'keras_kan' has no attribute {name!r}")

__all__ = [
    "KANDense",
    "KAN",
    "KANRegularizer",
    "fit_lbfgs",
    "plot_kan",
    "prune",
    "refine",
    "update_grids",
    "sync_grids",
    "callbacks",
    "datasets",
    "__version__",
]
