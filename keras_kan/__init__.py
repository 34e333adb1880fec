"""keras_kan: Kolmogorov–Arnold Networks for Keras 3 (TensorFlow, JAX, PyTorch)."""

import importlib
from importlib.metadata import PackageNotFoundError, version

from keras_kan import callbacks, datasets, distribution
from keras_kan.layers import KANDense
from keras_kan.lbfgs import fit_lbfgs
from keras_kan.models import KAN
from keras_kan.plotting import plot_kan
from keras_kan.regularizers import KANRegularizer
from keras_kan.surgery import prune, refine, set_regularizer, sync_grids, update_grids

try:
    __version__ = version("keras-kan")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


def __getattr__(name):
    # `keras_kan.tuner` needs the optional keras-tuner: import it on first use only.
    if name == "tuner":
        return importlib.import_module("keras_kan.tuner")
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
    "set_regularizer",
    "callbacks",
    "datasets",
    "distribution",
    "__version__",
]
