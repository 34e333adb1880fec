"""keras_kan: Kolmogorov–Arnold Networks for Keras 3 (TensorFlow, JAX, PyTorch)."""

import importlib
from importlib.metadata import PackageNotFoundError, version

from keras_kan import autodiff, callbacks, datasets, distribution, edges, jet, pde
from keras_kan.attribution import feature_scores, layer_scores, prune_input
from keras_kan.layers import KANDense
from keras_kan.lbfgs import fit_lbfgs
from keras_kan.models import KAN, ObjectiveModel
from keras_kan.plotting import plot_kan
from keras_kan.products import MultNodes
from keras_kan.regularizers import KANRegularizer
from keras_kan.surgery import (
    prune,
    pruning_report,
    refine,
    set_regularizer,
    sync_grids,
    update_grids,
)
from keras_kan.symbolic_library import add_symbolic, remove_symbolic

try:
    __version__ = version("keras-kan")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"


# Submodules with optional dependencies load on first use: `keras_kan.tuner` needs
# keras-tuner; `keras_kan.export` needs TensorFlow, onnx, ... (and importing it here
# would make `python -m keras_kan.export` run a module that is already imported);
# `keras_kan.symbolic` needs sympy and scipy.
_LAZY_SUBMODULES = ("tuner", "export", "symbolic")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"keras_kan.{name}")
    raise AttributeError(f"module 'keras_kan' has no attribute {name!r}")


__all__ = [
    "KANDense",
    "KAN",
    "MultNodes",
    "ObjectiveModel",
    "KANRegularizer",
    "fit_lbfgs",
    "plot_kan",
    "prune",
    "pruning_report",
    "refine",
    "update_grids",
    "sync_grids",
    "set_regularizer",
    "add_symbolic",
    "remove_symbolic",
    "feature_scores",
    "layer_scores",
    "prune_input",
    "autodiff",
    "callbacks",
    "datasets",
    "distribution",
    "edges",
    "jet",
    "pde",
    "__version__",
]
