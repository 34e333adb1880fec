"""Keras callbacks that reshape KANs during training: grid updates and pruning masks.

Both count *training steps* (batches; one step of `keras_kan.fit_lbfgs`
is one batch) from the start of each `fit` call, as pykan does. With
`x=None` they use the training inputs, which `keras_kan.fit_lbfgs`
hands them; `model.fit` does not expose its data to callbacks, so pass `x`
there.
"""

import keras

from keras_kan import backend as kan_backend
from keras_kan.surgery import apply_pruning_masks, pruning_plan, update_grids
from keras_kan.validation import check_int, check_one_of, check_real

__all__ = ["GridUpdate", "Pruning"]


class _StepCallback(keras.callbacks.Callback):
    """Counts training steps and resolves the sample `x` it acts on."""

    def __init__(self, x=None):
        super().__init__()
        self.x = x
        self._training_inputs = None
        self.step = 0

    def use_training_inputs(self, x):
        """Called by `fit_lbfgs` with its training inputs (used when `x` is None)."""
        self._training_inputs = x

    def _sample(self):
        x = self.x if self.x is not None else self._training_inputs
        if x is None:
            raise ValueError(
                f"{type(self).__name__} needs samples: pass `x=` (model.fit does not share its "
                "data with callbacks), or train with keras_kan.fit_lbfgs."
            )
        return x

    def on_train_begin(self, logs=None):
        self.step = 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1


class GridUpdate(_StepCallback):
    """Move every KANDense grid to the data every `every` steps before `stop_after`.

    pykan's `update_grid=True, grid_update_num=10, stop_grid_update_step=50` is
    `GridUpdate(every=5, stop_after=50)`: updates at steps 0, 5, ..., 45, each
    before that step's optimization, layer by layer on the activations that
    reach each layer (see `KANDense.update_grid`). With `start` (pykan's
    `start_grid_update_step`) the steps before it are left out: `start=5` updates
    at 5, 10, ..., 45, so the grids of hidden layers are not fitted to the
    activations of a freshly initialized model.

    Args:
        x: samples of the model input; None uses the training inputs (fit_lbfgs).
        every: steps between updates (>= 1); an update comes at every multiple.
        stop_after: no update at or after this step.
        verbose: print a line per update.
        start: no update before this step (>= 0).
    """

    def __init__(self, x=None, every=5, stop_after=50, verbose=0, start=0):
        super().__init__(x)
        self.every = check_int("every", every, 1)
        self.stop_after = check_int("stop_after", stop_after, 0)
        self.start = check_int("start", start, 0)
        self.verbose = verbose
        self.updates = 0

    @property
    def updates_first(self):
        """Whether an update comes before the first step (step 0)."""
        return self.start == 0 and self.stop_after > 0

    def next_update(self, step):
        """The first step after `step` that updates (None: no later update)."""
        following = max(step // self.every + 1, -(-self.start // self.every)) * self.every
        return following if following < self.stop_after else None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.updates = 0

    def on_train_batch_begin(self, batch, logs=None):
        if not self.start <= self.step < self.stop_after or self.step % self.every:
            return
        kan_backend.sync_model_state(self.model)
        update_grids(self.model, self._sample())
        self.updates += 1
        if self.verbose:
            print(f"GridUpdate: grids updated at step {self.step}")


class Pruning(_StepCallback):
    """Mask weak edges (and every edge of dead hidden nodes) at step `at_step`.

    Sets each KANDense's `edge_mask` from `keras_kan.surgery.pruning_plan`;
    shapes do not change, so training continues. Use `keras_kan.prune`
    afterwards for a physically smaller model.

    Args:
        x: samples of the model input; None uses the training inputs (fit_lbfgs).
        at_step: the training step (>= 0) before which the masks are applied.
        node_threshold, edge_threshold: as in `keras_kan.prune`.
        verbose: print the number of masked edges.
        scores: `"edge"` or `"attribution"`, as in `keras_kan.prune`.
    """

    def __init__(self, x=None, at_step=0, node_threshold=1e-2, edge_threshold=3e-2, verbose=0,
                 scores="edge"):
        super().__init__(x)
        self.at_step = check_int("at_step", at_step, 0)
        self.node_threshold = check_real("node_threshold", node_threshold, 0.0)
        self.edge_threshold = check_real("edge_threshold", edge_threshold, 0.0)
        self.scores = check_one_of("scores", scores, ("edge", "attribution"))
        self.verbose = verbose
        self.plan = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.step != self.at_step:
            return
        kan_backend.sync_model_state(self.model)
        self.plan = pruning_plan(self.model, self._sample(), self.node_threshold,
                                 self.edge_threshold, self.scores)
        apply_pruning_masks(self.plan)
        if self.verbose:
            masked = sum(int((e["mask"] == 0).sum()) for e in self.plan)
            print(f"Pruning: {masked} edges masked at step {self.step}")
