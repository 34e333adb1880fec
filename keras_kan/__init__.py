"""keras_kan: Kolmogorov–Arnold Networks for Keras 3 (TensorFlow, JAX, PyTorch)."""

from importlib.metadata import PackageNotFoundError, version

from keras_kan import callbacks, datasets
from keras_kan.attribution import feature_scores, prune_input
from keras_kan.layers import KANDense
from keras_kan.lbfgs import fit_lbfgs
from keras_kan.models import KAN
from keras_kan.plotting import plot_kan
from keras_kan.regularizers import KANRegularizer
from keras_kan.surgery import prune, refine, set_regularizer, sync_grids, update_grids
from keras_kan.symbolic_edges import add_symbolic

try:
    __version__ = version("keras-kan")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
    "add_symbolic",
    "feature_scores",
    "prune_input",
    "callbacks",
    "datasets",
    "__version__",
]
