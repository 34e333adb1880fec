"""One progress bar over `fit_lbfgs`'s steps (its `verbose=1`, the default).

`Model.fit`'s `ProgbarLogger` draws a bar per epoch: an `Epoch k/n` line and
a bar over that epoch's batches. For `fit_lbfgs` an epoch is one L-BFGS step
of one batch, so that is a block per step: 100 blocks for 100 steps.
`StepProgress` draws what pykan shows instead: a single `keras.utils.Progbar`
whose target is the number of steps, advanced at the end of every step with
that step's logs (`loss`, compiled metrics, `val_*`) shown as they are, not
averaged over the steps, then closed when training ends (at the last step, or
earlier when a callback stops training). `verbose=2` keeps the per-step lines
of `ProgbarLogger`, as in `Model.fit`.

It only displays: `History`, the user's callbacks and their logs are those of
`ProgbarLogger`'s run.
"""

import keras

__all__ = ["StepProgress"]


class StepProgress(keras.callbacks.Callback):
    """A single `keras.utils.Progbar` over the training's epochs (L-BFGS steps).

    Args:
        steps: the bar's target; `None` takes the `epochs` of the callback
            list's params (what `fit_lbfgs` passes).
    """

    def __init__(self, steps=None):
        super().__init__()
        self.steps = steps
        self._bar = None
        self._done = 0
        self._logs = {}

    def on_train_begin(self, logs=None):
        steps = self.steps if self.steps is not None else (self.params or {}).get("epochs")
        # No names are "stateless": every value is shown as it is, not averaged.
        self._bar = keras.utils.Progbar(steps, verbose=1, stateless_metrics=(),
                                        unit_name="step")
        self._done, self._logs = 0, {}

    def on_epoch_end(self, epoch, logs=None):
        self._done, self._logs = epoch + 1, dict(logs or {})
        self._bar.update(self._done, values=list(self._logs.items()), finalize=False)

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.update(self._done, values=list(self._logs.items()), finalize=True)
            self._bar = None
