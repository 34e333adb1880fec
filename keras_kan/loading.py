"""Strict loading of KANDense weights: the shapes an architecture gives, and the refusal.

`KANDense.load_own_variables` checks every stored shape against the layer's
config before it assigns anything. This module holds the two pieces of that
check that are not the layer's own state:

- `weight_shapes(n, grid_size, units, spline_order, use_bias)`: the shape of
  every weight by name (the one rule; the layer and the refusal both use it);
- `refusal_message(...)`: the error text when the shapes differ. It names the
  layer, the weights and both shapes, and then the fix that applies where the
  load happens. Stored weights that are this layer's kind with another
  `grid_size` or `units` (what `keras_kan.refine` and `keras_kan.prune` make)
  usually come from a KerasTuner trial whose `fit` changed the model: the tuner
  builds the model from the hyperparameters and loads the trial's checkpoint
  into it, so the user never calls `keras.saving.load_model` there. Such a
  load, or any load made from KerasTuner's code (found on the call stack, only
  on this error path), is told about `keras_kan.tuner.record_architecture` and
  `accept_recorded_architectures` (docs/guide.md#kerastuner).
"""

import sys

__all__ = ["weight_shapes", "stored_architecture", "under_keras_tuner", "refusal_message"]

#: Where the guide explains recording a trial's changed architecture.
TUNER_GUIDE = "docs/guide.md#kerastuner"


def weight_shapes(n, grid_size, units, spline_order, use_bias):
    """The weight shapes of a KANDense with `n` inputs, by name.

    `grid (n, G+2k+1)`, `spline_kernel (n, G+k, m)`, `base_kernel`,
    `spline_scale`, `edge_mask (n, m)`, and `bias (m,)` with `use_bias`.
    """
    g, k, m = int(grid_size), int(spline_order), int(units)
    shapes = {"grid": (n, g + 2 * k + 1), "spline_kernel": (n, g + k, m),
              "base_kernel": (n, m), "spline_scale": (n, m), "edge_mask": (n, m)}
    if use_bias:
        shapes["bias"] = (m,)
    return shapes


def stored_architecture(stored, spline_order, use_bias):
    """The `(n, grid_size, units)` whose shapes are exactly `stored`, or None.

    `stored` maps weight names to shapes (symbolic weights, when present, are
    `(n, units)`); the spline order and bias are the layer's own, so a match
    means the weights differ from the layer's only in inputs, grid size or units.
    """
    grid, base = stored.get("grid"), stored.get("base_kernel")
    if grid is None or base is None or len(grid) != 2 or len(base) != 2:
        return None
    n, grid_size, units = grid[0], grid[1] - 2 * int(spline_order) - 1, base[1]
    if grid_size < 1:
        return None
    shapes = weight_shapes(n, grid_size, units, spline_order, use_bias)
    shapes.update({name: (n, units) for name in stored if name not in shapes})  # symbolic
    return (n, grid_size, units) if shapes == stored else None


def under_keras_tuner():
    """Whether the current call comes from KerasTuner's code (a frame of `keras_tuner`)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__") or ""
        if name == "keras_tuner" or name.startswith("keras_tuner."):
            return True
        frame = frame.f_back
    return False


def refusal_message(layer, stored, own, paths):
    """The `ValueError` text for weights whose shapes `stored` differ from `own`.

    Args:
        layer: the refusing KANDense (its name and config go into the text).
        stored, own: `{weight name: shape}` of the stored weights and of the
            layer's variables (the same names).
        paths: `{weight name: variable path}` for the names in `own`.
    """
    first, *others = [name for name in own if stored[name] != own[name]]
    also = "".join(f"; '{name}': saved {stored[name]}, variable {own[name]}"
                   for name in others)
    text = (
        f"Layer '{layer.name}' ({type(layer).__name__}): the saved weight '{first}' has "
        f"shape {stored[first]}, but the layer's variable '{paths.get(first, first)}' has "
        f"shape {own[first]}{also}. The layer's config (units={layer.units}, "
        f"grid_size={layer.grid_size}, spline_order={layer.spline_order}, "
        f"use_bias={layer.use_bias}) with {layer.input_dim} inputs gives these shapes; "
        "the weights come from another architecture, and nothing was loaded into this layer."
    )
    found = stored_architecture(stored, layer.spline_order, layer.use_bias)
    changed = found is not None and found[0] == layer.input_dim
    if changed:
        text += (f" They fit this layer with grid_size={found[1]} and units={found[2]} "
                 "instead, a change keras_kan.refine or keras_kan.prune makes.")
    tuner = (
        "record the changed architecture in the trial with "
        "keras_kan.tuner.record_architecture(hp, model) in HyperModel.fit, and accept it "
        "with keras_kan.tuner.accept_recorded_architectures(hp, model) in HyperModel.build "
        f"(see {TUNER_GUIDE}; keras_kan.tuner.HyperKAN does this for its grid_schedule)."
    )
    if under_keras_tuner():
        return text + (" This load is KerasTuner's reload of a trial checkpoint into the "
                       "model that HyperModel.build makes: if the trial's fit refined or "
                       "pruned the model, " + tuner)
    if changed:
        return text + (" Build the model from the saved config to load them "
                       "(keras.saving.load_model does); if KerasTuner makes this load, "
                       + tuner)
    return text + (" Build the model from the saved config (keras.saving.load_model does) "
                   "to load them.")
