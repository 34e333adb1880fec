"""Full-batch L-BFGS training for any compiled Keras model, on every backend.

pykan trains KANs with `torch.optim.LBFGS(lr=1, history_size=10,
line_search_fn="strong_wolfe")` and calls `optimizer.step(closure)` once per
training step. `fit_lbfgs` reproduces that algorithm (two-loop recursion,
strong-Wolfe line search with cubic interpolation, the same stopping tests and
evaluation budget) in float64 NumPy, written once for all backends; only the
loss-and-gradient evaluation comes from `keras_kan.backend`. One L-BFGS step
(up to `max_iter` iterations) is one Keras epoch for callbacks, and
`fit_lbfgs` returns a `keras.callbacks.History` like `Model.fit`.

As in pykan's own copy of that optimizer, a curvature pair `(s, y)` enters the
history whenever `y.s > tolerance_ys` (pykan passes 1e-32; torch hard-codes
1e-10, which at the tiny losses of a fine grid rejects every pair and stalls
the optimizer). The line search's interval tolerance is 1e-9 (torch and
pykan). The algorithm itself, and where it deliberately differs from
torch's, is in `keras_kan.lbfgs_core`; this module is the Keras-facing
driver: data, callbacks, the step loop with its snapshot and rollback.
"""

import math
import warnings

import keras
import numpy as np

from keras_kan import backend as kan_backend
from keras_kan.lbfgs_compiled import CHUNK, CompiledSteps, Config, chunk_length, use_compiled
from keras_kan.lbfgs_core import LBFGS
from keras_kan.surgery import start_grids, sync_grids
from keras_kan.validation import check_finite, check_int, check_real

__all__ = ["fit_lbfgs"]



class _FlatParams:
    """The model's trainable variables as one float64 vector (C order, in order)."""

    def __init__(self, variables):
        self.variables = list(variables)
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.offsets = np.cumsum([0] + self.sizes)
        self.dtypes = [keras.backend.standardize_dtype(v.dtype) for v in self.variables]

    def get(self):
        if not self.variables:
            return np.zeros((0,), np.float64)
        return np.concatenate(
            [np.asarray(keras.ops.convert_to_numpy(v.value), np.float64).ravel()
             for v in self.variables]
        )

    def split(self, flat):
        """`flat` as a list of arrays shaped and typed like the variables."""
        return [
            flat[a:b].reshape(shape).astype(dtype)
            for a, b, shape, dtype in zip(self.offsets[:-1], self.offsets[1:], self.shapes,
                                          self.dtypes)
        ]

    def set(self, flat):
        for v, value in zip(self.variables, self.split(flat)):
            v.assign(value)

    def round(self, flat):
        """`flat` rounded to the precision the variables can hold."""
        if not self.variables:
            return flat
        return np.concatenate([p.ravel() for p in self.split(flat)]).astype(np.float64)


def get_flat_weights(model):
    """`model.trainable_variables` as one float64 NumPy vector."""
    return _FlatParams(model.trainable_variables).get()


def set_flat_weights(model, flat):
    """Assigns a vector from `get_flat_weights` back (cast to each variable's dtype)."""
    params = _FlatParams(model.trainable_variables)
    flat = np.asarray(flat, np.float64).ravel()
    if flat.size != params.offsets[-1]:
        raise ValueError(f"Expected {params.offsets[-1]} values, received {flat.size}.")
    params.set(flat)


# --- data ------------------------------------------------------------------------


def _to_arrays(data):
    """NumPy copies of a (nested) data structure; floats cast to `floatx` like `fit`."""
    if data is None:
        return None
    floatx = keras.config.floatx()

    def convert(a):
        if a is None:
            return None
        a = keras.ops.convert_to_numpy(a) if keras.ops.is_tensor(a) else np.asarray(a)
        if np.issubdtype(a.dtype, np.floating) and a.dtype != floatx:
            a = a.astype(floatx)
        return a

    return keras.tree.map_structure(convert, data)


def _num_samples(x):
    return int(keras.tree.flatten(x)[0].shape[0])


def _take(data, index):
    if data is None:
        return None
    return keras.tree.map_structure(lambda a: None if a is None else a[index], data)


def _to_tensors(data):
    if data is None:
        return None
    return keras.tree.map_structure(
        lambda a: None if a is None else keras.ops.convert_to_tensor(a), data
    )


class _Objective:
    """Loss and gradient at a flat parameter vector (see `backend.value_and_grad_fn`)."""

    def __init__(self, model, objective=None):
        self.variables = list(model.trainable_variables)
        self.params = _FlatParams(self.variables)
        self.objective = objective
        self.value_and_grad = self._function(model)
        self.round = self.params.round
        self.data = None
        self.last_f = None  # the raw loss of the last evaluation (may be NaN)

    def matches(self, model):
        """Whether this objective still describes `model`: same variables, and
        the same compiled function (a KANDense basis switch rebuilds it)."""
        if self._function(model) is not self.value_and_grad:
            return False
        variables = list(model.trainable_variables)
        return len(variables) == len(self.variables) and all(
            a is b and tuple(a.shape) == s
            for a, b, s in zip(variables, self.variables, self.params.shapes)
        )

    def _function(self, model):
        if self.objective is None:
            return kan_backend.value_and_grad_fn(model)
        return kan_backend.objective_value_and_grad_fn(model, self.objective)

    def __call__(self, x):
        """(f, g) at x, with f = inf when the loss or the gradient is not finite.

        The model's trainable variables may or may not hold x afterwards
        (backend-dependent): callers assign the point they accept.
        """
        f, g = self.value_and_grad.at(self.params.split(x), *self.data)
        self.last_f = f
        if not (math.isfinite(f) and np.all(np.isfinite(g))):
            f = math.inf
        return f, g


# --- the Keras-facing driver -------------------------------------------------------


def fit_lbfgs(
    model,
    x=None,
    y=None,
    steps=100,
    batch_size=None,
    validation_data=None,
    callbacks=None,
    history_size=10,
    max_iter=20,
    line_search="strong_wolfe",
    tolerance_grad=1e-32,
    tolerance_change=1e-32,
    verbose="auto",
    sample_weight=None,
    *,
    max_eval=None,
    learning_rate=1.0,
    tolerance_ys=1e-32,
    update_grid=False,
    grid_update_num=10,
    stop_grid_update_step=50,
    objective=None,
    compiled=None,
    start_grid_update_step=-1,
):
    """Trains a compiled Keras model with L-BFGS, like pykan's `fit(opt="LBFGS")`.

    Each of the `steps` steps is one call of `torch.optim.LBFGS.step` as pykan
    makes it: up to `max_iter` L-BFGS iterations and `max_eval` (default
    `max_iter * 5 // 4`) loss-and-gradient evaluations, history `history_size`,
    step size `learning_rate` (the first iteration ever scaled by
    `min(1, 1 / |g|_1)`), strong-Wolfe line search (c1=1e-4, c2=0.9, cubic
    interpolation; `line_search=None` takes fixed steps). The curvature history
    carries over from step to step, also when a callback moves the weights (a
    grid update): only the pair that would span that jump is left out. The math
    runs in float64 NumPy on the host, or (`objective=` fits on JAX and
    TensorFlow, see `compiled`) inside the backend's compiled program, in the
    variables' dtype, several steps per call. The model's variables keep
    their dtype.

    The objective is what `model.fit` minimizes: the compiled loss plus
    `model.losses` (e.g. `KANRegularizer` penalties), the model called with
    `training=True`. The optimizer given to `compile` is not used.

    With `objective=fn`, the objective is `fn(model)` instead: any scalar
    built from the model, e.g. a PDE residual from `keras_kan.autodiff`
    (physics-informed training). The model then need not be compiled, `y`,
    `sample_weight` and `batch_size` are not used, and `x`, if given, only
    supplies the samples for `update_grid=True` and for `GridUpdate`/`Pruning`
    callbacks without samples of their own. `fn` is traced into the compiled
    objective (`model.run_eagerly = True` runs it eagerly), so it should use
    `keras.ops` and the data it closes over; penalties in `model.losses` are
    not added (add them in `fn` if wanted).

    Args:
        model: a built or buildable Keras model, compiled with a loss (built,
            and compiled or not, with `objective`).
        x, y, sample_weight: training data (arrays or tensors, nested structures
            allowed), as for `Model.fit`. With `objective`: `x` optional (the
            samples grid updates use), `y` and `sample_weight` must be None.
        steps: number of L-BFGS steps; each is one epoch for callbacks.
        batch_size: `None` (default, pykan's default too): every step uses all
            the data. An integer: every step draws a new random mini-batch of
            that size (without replacement, from NumPy's global random state,
            so `keras.utils.set_random_seed` makes it reproducible) and all the
            evaluations of that step use it.
        validation_data: `(x_val, y_val)` or `(x_val, y_val, sample_weight_val)`,
            evaluated after every step as `model.evaluate` would, in one batch
            (`val_loss` and `val_<metric>` logs).
        callbacks: Keras callbacks (History, EarlyStopping, ModelCheckpoint,
            TensorBoard, ...). `model.stop_training = True` stops training.
        history_size, max_iter, line_search, tolerance_grad, tolerance_change,
            max_eval, learning_rate: as in `torch.optim.LBFGS`. The tolerances
            default to pykan's 1e-32, so every step runs its `max_iter`
            iterations (torch's own 1e-7 / 1e-9 stop a step early once the
            loss is small, which is where KANs keep improving).
        tolerance_ys: a curvature pair enters the history when `y.s` exceeds
            it. pykan's 1e-32 (torch's fixed 1e-10 discards every pair once
            the loss is below about 1e-8, and fine grids then stall).
        verbose: `"auto"`/1 progress bar, 2 one line per step, 0 silent.
        update_grid, grid_update_num, stop_grid_update_step, start_grid_update_step:
            pykan's grid-update shortcut. `update_grid=True` adds a
            `keras_kan.callbacks.GridUpdate(every=stop_grid_update_step //
            grid_update_num, stop_after=stop_grid_update_step,
            start=max(0, start_grid_update_step))` on the training inputs: with
            pykan's defaults, the grids follow the data before steps 0, 5, ...,
            45; `start_grid_update_step=5` leaves out step 0 (>= -1, pykan's
            default -1 is 0).
        objective: `fn(model) -> scalar tensor` to minimize instead of the
            compiled loss (see above). Returning anything but a scalar raises a
            `ValueError` before any weight changes.
        compiled: where the L-BFGS math runs. `None` (default): for an
            `objective=` fit on JAX and TensorFlow, inside the backend's
            compiled program (`keras_kan.lbfgs_compiled`: several whole steps
            per `jax.jit` / `tf.function` call, in the variables' dtype);
            otherwise (data fits, where compiling measured slower than it
            saves; PyTorch; a `keras.distribution`; `model.run_eagerly`; a
            model without trainable weights) on the host in float64 NumPy
            (`keras_kan.lbfgs_core`, the reference). `True` / `False` force
            one or the other (`True` on PyTorch runs the keras.ops algorithm
            eagerly on torch tensors).

    Returns:
        A `keras.callbacks.History`: `history.history["loss"]` holds the
        objective at the end of every step (compiled metrics and `val_*` too).

    At the end of every step the model holds the accepted point of the line
    search (rejected trial points never leak). Non-finite trial points count as
    failed line-search trials. Data with NaN or inf, `x`, `y` and
    `sample_weight` of different lengths, no samples, or a loss or gradient
    that is not finite at the starting weights raise a `ValueError` and leave
    the model as it was. If the loss or its gradient at the start of a later
    step is not finite (e.g. after a callback changed the weights), or a step
    finds no finite point along its search direction, training stops with a
    `RuntimeWarning` naming the step and the model gets back the weights of
    the last finite step.
    """
    if objective is not None:
        return _fit_objective(model, objective, x, y, sample_weight, steps, batch_size,
                              validation_data, callbacks, history_size, max_iter, line_search,
                              tolerance_grad, tolerance_change, verbose, max_eval, learning_rate,
                              tolerance_ys, update_grid, grid_update_num, stop_grid_update_step,
                              compiled, start_grid_update_step)
    _check_arguments(model, x, steps, history_size, max_iter, line_search, batch_size,
                     tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                     tolerance_ys=tolerance_ys)
    steps = int(steps)
    max_eval = int(max_eval) if max_eval is not None else int(max_iter) * 5 // 4
    verbose = 1 if verbose == "auto" else verbose
    new_optimizer = _optimizer_factory(history_size, max_iter, max_eval, line_search,
                                       tolerance_grad, tolerance_change, learning_rate,
                                       tolerance_ys, compiled)
    data = _TrainingData(x, y, sample_weight, batch_size)
    _check_data(data)
    _build(model, data.x, data.y, data.sample_weight, data.size)
    val_data = _validation_tensors(validation_data)
    grid_update = _grid_update(update_grid, grid_update_num, stop_grid_update_step,
                               start_grid_update_step)
    if not isinstance(data.x, (list, tuple, dict)):  # one input: grids meet the data first
        # A grid update before the first step moves the grids to the data: no warning then.
        updates = [grid_update, *(callbacks if isinstance(callbacks, (list, tuple)) else [])]
        start_grids(model, data.x, check=not any(
            type(c).__name__ == "GridUpdate" and c.updates_first for c in updates if c))
    callback_list = _callback_list(model, callbacks, data.x, grid_update, verbose, steps)
    return _train(model, data, val_data, callback_list, new_optimizer, steps)


def _optimizer_factory(history_size, max_iter, max_eval, line_search, tolerance_grad,
                       tolerance_change, learning_rate, tolerance_ys, compiled):
    """`new_optimizer(model, objective)`: the host `LBFGS` or, where `use_compiled`
    says so, `CompiledSteps` (same algorithm, whole steps in the backend's program)."""
    config = Config(history_size, max_iter, max_eval, line_search, tolerance_grad,
                    tolerance_change, learning_rate, tolerance_ys, CHUNK)

    def new_optimizer(model, objective=None):
        if use_compiled(model, compiled, objective):
            return CompiledSteps(model, config, objective)
        return LBFGS(int(history_size), int(max_iter), max_eval, line_search, tolerance_grad,
                     tolerance_change, learning_rate, tolerance_ys)

    return new_optimizer


def _grid_update(update_grid, grid_update_num, stop_grid_update_step, start_grid_update_step):
    start = check_int("start_grid_update_step", start_grid_update_step, -1)
    if not update_grid:
        return None
    from keras_kan.callbacks import GridUpdate

    every = max(1, int(stop_grid_update_step) // max(1, int(grid_update_num)))
    return GridUpdate(every=every, stop_after=int(stop_grid_update_step), start=max(0, start))


def _fit_objective(model, objective, x, y, sample_weight, steps, batch_size, validation_data,
                   callbacks, history_size, max_iter, line_search, tolerance_grad,
                   tolerance_change, verbose, max_eval, learning_rate, tolerance_ys,
                   update_grid, grid_update_num, stop_grid_update_step, compiled,
                   start_grid_update_step):
    """`fit_lbfgs(model, objective=fn, ...)`: L-BFGS on the scalar `fn(model)`."""
    if not callable(objective):
        raise TypeError("fit_lbfgs: `objective` must be a callable `fn(model) -> scalar "
                        f"tensor`, got {type(objective).__name__}.")
    for name, value in (("y", y), ("sample_weight", sample_weight), ("batch_size", batch_size),
                        ("validation_data", validation_data)):
        if value is not None:
            raise ValueError(f"fit_lbfgs: `{name}` is not used with `objective` (the objective "
                             "holds its own data); pass None.")
    if line_search not in ("strong_wolfe", None):
        raise ValueError(
            f"fit_lbfgs: line_search must be 'strong_wolfe' or None, got {line_search!r}."
        )
    check_int("steps", steps, 0)
    check_int("history_size", history_size, 1)
    check_int("max_iter", max_iter, 1)
    for name, value in (("tolerance_grad", tolerance_grad),
                        ("tolerance_change", tolerance_change), ("tolerance_ys", tolerance_ys)):
        check_real(name, value, 0.0)
    data = _ObjectiveData(x)
    if not model.built:
        if data.x is None:
            raise ValueError("fit_lbfgs: the model is not built; build it (e.g. create it with "
                             "keras.Input) or pass `x` to build it on.")
        model(_to_tensors(_take(data.x, np.arange(min(data.size, 2)))))
    steps = int(steps)
    max_eval = int(max_eval) if max_eval is not None else int(max_iter) * 5 // 4
    verbose = 1 if verbose == "auto" else verbose
    new_optimizer = _optimizer_factory(history_size, max_iter, max_eval, line_search,
                                       tolerance_grad, tolerance_change, learning_rate,
                                       tolerance_ys, compiled)
    grid_update = _grid_update(update_grid, grid_update_num, stop_grid_update_step,
                               start_grid_update_step)
    callback_list = _callback_list(model, callbacks, data.x, grid_update, verbose, steps)
    return _train(model, data, None, callback_list, new_optimizer, steps, objective)


class _ObjectiveData:
    """`_TrainingData` for an objective: no batches; `x` only for grid updates."""

    full_batch = True  # the objective holds its own data: every step sees the same

    def __init__(self, x):
        self.x = _to_arrays(x)
        self.size = 0 if x is None else _num_samples(self.x)
        if self.x is not None:
            for array in keras.tree.flatten(self.x):
                check_finite("x", array)

    def next_batch(self):
        return (None, None, None)


def _check_arguments(model, x, steps, history_size, max_iter, line_search, batch_size,
                     **tolerances):
    """Clear errors for everything `fit_lbfgs` can tell before touching the model."""
    if not getattr(model, "compiled", False):
        raise ValueError(
            "fit_lbfgs: the model is not compiled; call model.compile(loss=...) first."
        )
    if line_search not in ("strong_wolfe", None):
        raise ValueError(
            f"fit_lbfgs: line_search must be 'strong_wolfe' or None, got {line_search!r}."
        )
    check_int("steps", steps, 0)
    check_int("history_size", history_size, 1)
    check_int("max_iter", max_iter, 1)
    for name, value in tolerances.items():
        check_real(name, value, 0.0)
    if x is None:
        raise ValueError("fit_lbfgs: x is required (arrays or tensors).")
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)


def _check_data(data):
    """Same number of finite samples (at least one) in `x`, `y` and `sample_weight`."""
    if data.size == 0:
        raise ValueError("Received an invalid value for argument `x`: expected at least one "
                         "sample, got 0.")
    for name, part in (("x", data.x), ("y", data.y), ("sample_weight", data.sample_weight)):
        for array in keras.tree.flatten(part):
            if array is None:
                continue
            if array.shape[:1] != (data.size,):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`: it has "
                    f"{array.shape[0] if array.ndim else 'no'} samples but `x` has "
                    f"{data.size} (shape {array.shape})."
                )
            check_finite(name, array)


class _TrainingData:
    """The training arrays (NumPy, `floatx`) and the batch each step trains on."""

    def __init__(self, x, y, sample_weight, batch_size):
        self.x, self.y = _to_arrays(x), _to_arrays(y)
        self.sample_weight = _to_arrays(sample_weight)
        self.size = _num_samples(self.x)
        self.full_batch = batch_size is None or int(batch_size) >= self.size
        self.batch_size = batch_size
        self._rng = (None if self.full_batch
                     else np.random.default_rng(np.random.randint(2**31 - 1)))
        self._full = None

    def next_batch(self):
        """`(x, y, sample_weight)` tensors: all the data, or a fresh random mini-batch."""
        if self.full_batch:
            if self._full is None:
                self._full = _to_tensors((self.x, self.y, self.sample_weight))
            return self._full
        index = np.sort(self._rng.choice(self.size, int(self.batch_size), replace=False))
        return _to_tensors((_take(self.x, index), _take(self.y, index),
                            _take(self.sample_weight, index)))


def _validation_tensors(validation_data):
    if validation_data is None:
        return None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("fit_lbfgs: validation_data must be (x_val, y_val) or "
                         "(x_val, y_val, sample_weight_val).")
    val_x, val_y, val_sw = keras.utils.unpack_x_y_sample_weight(tuple(validation_data))
    return _to_tensors(_to_arrays((val_x, val_y, val_sw)))


def _callback_list(model, callbacks, x, grid_update, verbose, steps):
    """A `CallbackList` with History and progress, as `Model.fit` makes one.

    `verbose=1`: one bar over the steps (`progress.StepProgress`), unless a
    `ProgbarLogger` is given; `verbose=2`: Keras's `ProgbarLogger`, a line per
    step. `GridUpdate`/`Pruning` callbacks without samples of their own get
    the training inputs.
    """
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks
    callbacks = list(callbacks) if callbacks else []
    if grid_update is not None:
        callbacks.append(grid_update)
    for callback in callbacks:
        if hasattr(callback, "use_training_inputs"):
            callback.use_training_inputs(x)
    if verbose == 1 and not any(isinstance(c, keras.callbacks.ProgbarLogger) for c in callbacks):
        from keras_kan.progress import StepProgress

        callbacks.append(StepProgress(steps))
    return keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=verbose == 2, model=model,
        verbose=verbose, epochs=steps, steps=1,
    )


def _train(model, data, val_data, callback_list, new_optimizer, steps, loss_fn=None):
    """The step loop: one L-BFGS step per epoch, with a snapshot to roll back to.

    `loss_fn`: a user objective `fn(model)` instead of the compiled loss.
    """
    has_metrics = loss_fn is None and compiled_with_metrics(model)
    objective, opt = _Objective(model, loss_fn), new_optimizer(model, loss_fn)
    model.stop_training = False
    logs = {}
    callback_list.on_train_begin()
    snapshot = model.get_weights()  # the last weights with a finite loss
    accepted = None  # the parameters at the end of the previous step
    compiled = isinstance(opt, CompiledSteps)
    step = 0
    try:
        while step < steps:
            callback_list.on_epoch_begin(step)
            callback_list.on_train_batch_begin(0)
            if not objective.matches(model):  # a callback replaced variables
                objective, opt = _Objective(model, loss_fn), new_optimizer(model, loss_fn)
            objective.data = data.next_batch()
            x0 = objective.params.get()
            if accepted is not None and not np.array_equal(x0, accepted):
                # A callback moved the weights (grid update, pruning, restore).
                # pykan's optimizer keeps all its state; keep the curvature
                # memory too (the objective changed little) but not the pair
                # that would span the jump.
                opt.forget_last_move()
            if compiled:  # several steps in one call, up to where callbacks need the host
                chunk = 1 if (has_metrics or val_data is not None or not data.full_batch) \
                    else chunk_length(callback_list, steps - step, opt.config.capacity)
                x1, losses, status = opt.run(x0, chunk, objective.data)
                f0 = objective(x0)[0] if status == 1 else 0.0  # the failure's message
            else:
                f0, g0 = objective(x0)
                status = 1 if not math.isfinite(f0) else 0
            if status == 1:
                what = "loss" if not math.isfinite(objective.last_f) else "gradient"
                if accepted is None:  # nothing trained yet: an error, the model is restored
                    raise ValueError(
                        f"fit_lbfgs: the {what} is not finite at the starting weights "
                        f"(loss={objective.last_f}); check the model's weights and loss."
                    )
                _stop(model, snapshot, f"the {what} is not finite (loss={objective.last_f}) at the "
                      f"start of step {step + 1}/{steps}")
                break
            if not compiled:
                x1, f1, _, _, saw_non_finite = opt.step(objective, x0, f0, g0)
                stuck = saw_non_finite and np.array_equal(x1, x0)
                losses, status = ([] if stuck else [f1]), (2 if stuck else 0)
            objective.params.set(x1)  # the accepted point, not the last trial
            accepted = x1
            if losses:
                snapshot = model.get_weights()
            for j, loss in enumerate(losses):  # the steps of the chunk, one epoch each
                if j:
                    callback_list.on_epoch_begin(step + j)
                    callback_list.on_train_batch_begin(0)
                logs = {"loss": float(loss)}
                if has_metrics:
                    metrics = _evaluate(model, *objective.data)
                    logs.update({k: v for k, v in metrics.items() if k != "loss"})
                callback_list.on_train_batch_end(0, logs)
                if val_data is not None:
                    logs.update({f"val_{k}": v for k, v in _evaluate(model, *val_data).items()})
                callback_list.on_epoch_end(step + j, logs)
            step += len(losses)
            if status == 2:
                _stop(model, None, f"the loss is not finite along the search direction at step "
                      f"{step + 1}/{steps} and no finite point improves it")
                break
            if model.stop_training:
                break
    except BaseException:
        # Interrupted (e.g. KeyboardInterrupt) mid-step: leave the model at
        # the last accepted point, not at a line-search trial.
        model.set_weights(snapshot)
        sync_grids(model)
        raise
    callback_list.on_train_end(logs)
    return model.history


def compiled_with_metrics(model):
    """Whether `model.compile` was given metrics (each step then evaluates them).

    Read from `model.metrics` (Keras adds its "compile_metrics" container only
    when `metrics` or `weighted_metrics` was passed) rather than from
    `get_compile_config()`: serializing the config imports TensorFlow in a JAX
    or PyTorch process that has it installed, seconds per fit.
    """
    return any(m.name == "compile_metrics" for m in model.metrics)


def _evaluate(model, x, y, sample_weight):
    """`model.evaluate(..., return_dict=True)` on one batch, without its data pipeline.

    Same loss (`training=False`) and compiled metrics; the forward pass is
    compiled (`backend.evaluate_fn`), the metric updates run eagerly.
    """
    model.reset_metrics()
    loss, y_pred = kan_backend.evaluate_fn(model)(x, y, sample_weight)
    results = model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    logs = {k: float(keras.ops.convert_to_numpy(v)) for k, v in results.items()}
    logs["loss"] = loss
    return logs


def _build(model, x, y, sample_weight, n):
    """Builds the model and its compiled loss outside any traced function.

    A built model is not run: its output spec is computed symbolically and the
    compiled loss is built on zeros (`StatelessScope`, so no stale eager
    `model.losses` are read).
    """
    index = np.arange(min(n, 2))
    bx, by, bsw = _to_tensors((_take(x, index), _take(y, index), _take(sample_weight, index)))
    if not model.built:
        model(bx)
    spec = keras.tree.map_structure(lambda a: keras.KerasTensor(a.shape, a.dtype), bx)
    y_pred = keras.tree.map_structure(
        lambda s: keras.ops.zeros(s.shape, s.dtype), model.compute_output_spec(spec)
    )
    mapping = [(v, v.value) for v in model.variables]
    with keras.StatelessScope(state_mapping=mapping):
        kan_backend.compute_loss(model, bx, by, y_pred, bsw, training=False)
    # Build the (unused) compiled optimizer as `fit` would, so that a `.keras`
    # file saved after `fit_lbfgs` reloads without optimizer-mismatch warnings.
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)


def _stop(model, snapshot, reason):
    if snapshot is not None:
        model.set_weights(snapshot)
        sync_grids(model)
    model.stop_training = True
    warnings.warn(f"fit_lbfgs: {reason}; stopped training and restored the weights of the "
                  "last step with a finite loss.", RuntimeWarning, stacklevel=3)
