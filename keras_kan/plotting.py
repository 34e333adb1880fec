"""`plot_kan`: draw a KAN with every edge's learned function, as in the KAN paper.

Nodes sit in rows, the model input at the bottom and the output at the top.
Every unmasked edge `i -> j` of a `keras_kan.KANDense` layer gets a
small inset between the two rows showing its curve `phi_ij` over the values
that actually reach input `i` for the given data; a line joins the input
node to the inset and the inset to the output node. The edge's importance
score (as `layer.edge_scores`, normalized per layer) sets how dark and how
thick it is: `alpha = tanh(3 * score / max_score)`. Masked (pruned) edges are not
drawn.

matplotlib is imported only when `plot_kan` is called (`pip install
keras-kan[plot]`). The figure is a plain `matplotlib.figure.Figure` on an
Agg canvas: no pyplot state, no GUI backend is touched, and the backend the
user selected is left alone (pass `show=True` to display through pyplot).
"""

import math
import os
import re

import numpy as np
from keras import ops

from keras_kan import symbolic_edges
from keras_kan.network import (
    chain_inputs,
    edge_scores,
    edge_values,
    feeds,
    kan_layers,
    model_samples,
    node_steps,
    quantile_samples,
)
from keras_kan.products import mult_groups
from keras_kan.validation import check_int, even_rows

__all__ = ["plot_kan"]

_MARGIN = 0.45  # inches, left/right
_BOTTOM = 0.45  # inches below the input row (labels)
_TOP = 0.45  # inches above the output row (labels)
_TITLE = 0.35  # extra inches for a title
_MAX_WIDTH = 20.0  # inches: default figures never get wider
_MIN_INSET = 0.12  # inches: narrower insets are skipped (plain edges instead)
_LEVEL_GAP = 0.12  # inches between staggered rows of insets in a crowded layer
_SYMBOLIC_COLOR = "#c0392b"  # symbolic edges (red, as pykan draws them)


def _require_matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "plot_kan needs matplotlib, which is not installed. Install it with "
            "`pip install keras-kan[plot]` (or `pip install matplotlib`)."
        ) from error
    return Figure, FigureCanvasAgg, LineCollection


# ------------------------------------------------------------------ drawing
def _node_x(count, left, width):
    return left + width * (np.arange(count) + 0.5) / count


def _names(names, count, stem, argument):
    if names is None:
        if count == 1 and stem == "y":
            return ["$y$"]
        return [f"${stem}_{{{k + 1}}}$" for k in range(count)]
    if isinstance(names, str) or len(names) != count:
        raise ValueError(f"`{argument}` must be a list of {count} strings, got {names!r}.")
    return [str(name) for name in names]


def _file_format(to_file, canvas_class):
    path = os.fspath(to_file)
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    supported = canvas_class.get_supported_filetypes()
    if extension not in supported:
        raise ValueError(
            f"Cannot save the plot to '{path}': unknown extension '.{extension}'; use one of "
            f"{sorted(supported)} (e.g. .png, .pdf, .svg)."
        )
    return path, extension


def symbolic_labels(layer):
    """`{(i, j): "c*f(a*x+b)+d"}` for the layer's symbolic edges (3 significant digits)."""
    names = symbolic_edges.function_names(layer)
    params = {w: np.asarray(ops.convert_to_numpy(getattr(layer, w)), np.float64)
              for w in symbolic_edges.SYMBOLIC_WEIGHT_NAMES}
    labels = {}
    for i, j in zip(*np.nonzero(names != "")):
        if params["symbolic_mask"][i, j] == 0:
            continue
        a, b, c, d = (params[w][i, j] for w in symbolic_edges.SYMBOLIC_WEIGHT_NAMES[1:])
        inner = ("x" if abs(a - 1) < 5e-4 else f"{a:.3g}x") + (
            f"{b:+.3g}" if abs(b) >= 5e-4 else "")
        name = str(names[i, j])
        variable = re.compile(r"(?<![a-z])x(?![a-z])")  # the `x` of "x^2", "1/x"; not "exp"
        core = (variable.sub(f"({inner})", name) if variable.search(name)
                else f"{name}({inner})")
        outer = f"{c:.3g}*" if abs(c - 1) >= 5e-4 else ""
        labels[(int(i), int(j))] = f"{outer}{core}" + (f"{d:+.3g}" if abs(d) >= 5e-4 else "")
    return labels


def _collect(model, layers, inputs, show_scores, max_points, attribution=None):
    """Rows of nodes and, per KAN layer, its live edges, curves and opacities."""
    rows, bands = [], []
    steps = node_steps(model, layers)
    for index, (layer, layer_in) in enumerate(zip(layers, inputs)):
        n, m = layer_in.shape[1], layer.units
        before = layers[index - 1] if steps[index - 1] is None else steps[index - 1]
        if index == 0 or not feeds(model, before, layer):
            rows.append(n)  # a new input row (first layer, or other layers in between)
        rows.append(m)
        symbolic = symbolic_labels(layer)
        mask = np.asarray(ops.convert_to_numpy(layer.edge_mask), np.float64)
        for i, j in symbolic:  # symbolic edges are live too
            mask[i, j] = 1.0
        if attribution is not None:
            scores = np.where(mask != 0, attribution[index], 0.0)
        else:
            scores = np.where(mask != 0, np.nan_to_num(edge_scores(layer, layer_in)), 0.0)
        top = scores.max() if scores.size else 0.0
        if not show_scores:
            alpha = np.ones_like(scores)
        else:
            alpha = np.tanh(3.0 * scores / top) if top > 0 else np.zeros_like(scores)
        xs = quantile_samples(layer_in, max_points)
        bands.append({
            "layer_index": index, "in_row": len(rows) - 2, "alpha": alpha, "xs": xs,
            "phis": edge_values(layer, xs),
            "edges": [(i, j) for i in range(n) for j in range(m) if mask[i, j] != 0],
            "symbolic": symbolic,
        })
        if steps[index] is not None:
            rows.append(steps[index].units)
            bands.append(_product_band(steps[index], len(rows) - 2))
    return rows, bands


def _product_band(step, in_row):
    """The gap from a layer's subnodes to its nodes (`MultNodes`), drawn as pykan does:
    a line from each subnode to its node; mult nodes are squares."""
    links = [(j, j) for j in range(step.n_sum)] + [
        (q, step.n_sum + r) for r, group in enumerate(mult_groups(step.n_sum, step.arity))
        for q in group]
    return {"in_row": in_row, "edges": [], "links": links,
            "mult_nodes": list(range(step.n_sum, step.units))}


def _layout(rows, bands, figsize, title):
    """Figure size and, per gap between rows, where the insets go (inches)."""
    by_gap = {band["in_row"]: band for band in bands}
    if figsize is None:
        max_edges = max([len(band["edges"]) for band in bands] + [1])
        content = min(max(max_edges * 0.84, max(rows) * 0.55, 2.6), _MAX_WIDTH)
        width = content + 2 * _MARGIN
    else:
        width = figsize[0]
        content = max(width - 2 * _MARGIN, 0.5 * width)
    gaps, natural = [], []
    for gap in range(len(rows) - 1):
        band = by_gap.get(gap)
        count = len(band["edges"]) if band is not None else 0
        spec = {"band": band, "levels": 0, "inset_w": 0.0, "inset_h": 0.0}
        if count:
            slot = content / count
            # Crowded layers stagger their insets over up to 4 levels so each
            # can be wider than its slot; past that, plain lines (levels = 0).
            levels = 1 if slot >= 0.45 else min(4, math.ceil(0.45 / slot))
            inset_w = min(0.85 * levels * slot, 0.6) if levels > 1 else min(slot / 1.35, 0.75)
            spec["slot"] = slot
            if inset_w >= _MIN_INSET * levels and 0.85 * slot * levels >= 0.3:
                spec.update(levels=levels, inset_w=inset_w, inset_h=0.75 if levels == 1 else 0.5)
        levels = spec["levels"]
        stack = levels * spec["inset_h"] + max(levels - 1, 0) * _LEVEL_GAP
        room = 1.1 + 0.4 * max(levels - 1, 0)  # room for the lines above and below
        natural.append(stack + room if count else (
            0.7 if band is None else 0.45 if "links" in band else 1.0))
        gaps.append(spec)
    top_pad, bottom_pad = _TOP + (_TITLE if title else 0.0), _BOTTOM
    if figsize is None:
        height, scale = bottom_pad + top_pad + sum(natural), 1.0
    else:
        height = figsize[1]
        if height - top_pad - bottom_pad < 0.5 * height:
            top_pad = bottom_pad = 0.25 * height
        scale = (height - top_pad - bottom_pad) / max(sum(natural), 1e-9)
    return {
        "width": width, "height": height, "left": (width - content) / 2, "scale": scale,
        "gaps": gaps, "row_y": bottom_pad + scale * np.concatenate([[0.0], np.cumsum(natural)]),
        "node_x": [_node_x(count, (width - content) / 2, content) for count in rows],
    }


class _Lines:
    """Edge lines collected for one `LineCollection`; opacity sets the width too."""

    def __init__(self):
        self.segments, self.colors, self.widths = [], [], []

    def add(self, start, end, alpha, symbolic=False):
        alpha = float(np.clip(alpha, 0.0, 1.0))
        self.segments.append((start, end))
        self.colors.append((0.75, 0.1, 0.1, alpha) if symbolic else (0.0, 0.0, 0.0, alpha))
        self.widths.append(0.4 + 1.4 * alpha)


def _draw_gap(fig, ax, geo, gap, lines):
    """The edges between rows `gap` and `gap + 1`: insets (or plain lines)."""
    spec = geo["gaps"][gap]
    band, width, height = spec["band"], geo["width"], geo["height"]
    y0, y1 = geo["row_y"][gap], geo["row_y"][gap + 1]
    if band is None:
        ax.text(width / 2, 0.5 * (y0 + y1), "(non-KAN layers)", ha="center", va="center",
                fontsize=9, color="0.4", style="italic")
        return
    if "links" in band:  # subnodes -> sum and mult nodes
        for q, j in band["links"]:
            lines.add((geo["node_x"][gap][q], y0), (geo["node_x"][gap + 1][j], y1), 0.8)
        return
    x_in, x_out, alpha = geo["node_x"][gap], geo["node_x"][gap + 1], band["alpha"]
    levels = spec["levels"]
    if levels == 0:
        for i, j in band["edges"]:
            lines.add((x_in[i], y0), (x_out[j], y1), alpha[i, j], (i, j) in band["symbolic"])
        return
    inset_w, inset_h = spec["inset_w"], spec["inset_h"] * geo["scale"]
    level_gap = _LEVEL_GAP * geo["scale"]
    bottom = 0.5 * (y0 + y1) - (levels * inset_h + (levels - 1) * level_gap) / 2
    for e, (i, j) in enumerate(band["edges"]):
        a = float(alpha[i, j])
        cx = geo["left"] + spec["slot"] * (e + 0.5)
        lo = bottom + (e % levels) * (inset_h + level_gap)
        red = (i, j) in band["symbolic"]
        lines.add((x_in[i], y0), (cx, lo), a, red)
        lines.add((cx, lo + inset_h), (x_out[j], y1), a, red)
        inset = fig.add_axes(
            ((cx - inset_w / 2) / width, lo / height, inset_w / width, inset_h / height),
            label=f"kan_edge_{band['layer_index']}_{i}_{j}",
        )
        label = band["symbolic"].get((i, j))
        inset.plot(band["xs"][:, i], band["phis"][:, i, j],
                   color=_SYMBOLIC_COLOR if label else "#1b3f8f",
                   alpha=max(a, 0.04), lw=0.6 + 1.0 * a)
        if label:  # pykan draws symbolic edges red; the formula goes above the curve
            inset.set_title(label, fontsize=5.5, color=_SYMBOLIC_COLOR, pad=1.5)
        inset.set_xticks([])
        inset.set_yticks([])
        inset.margins(x=0.04, y=0.12)
        if levels == 1:  # staggered insets keep a white face that hides lines behind
            inset.patch.set_alpha(0.0)
        for spine in inset.spines.values():
            spine.set_alpha(max(a, 0.08))
            spine.set_linewidth(0.5 + 0.5 * a)


def _draw_nodes(ax, geo, rows, bands, in_labels, out_labels):
    live = [np.zeros(count, bool) for count in rows]
    squares = [np.zeros(count, bool) for count in rows]  # mult nodes
    for band in bands:
        for i, j in band["edges"]:
            live[band["in_row"]][i] = live[band["in_row"] + 1][j] = True
        for q, j in band.get("links", ()):
            live[band["in_row"] + 1][j] |= live[band["in_row"]][q]
        squares[band["in_row"] + 1][band.get("mult_nodes", [])] = True
    size = 50.0 if max(rows) <= 20 else 18.0
    for r in range(len(rows)):
        for marker, which in (("o", ~squares[r]), ("s", squares[r])):
            if which.any():
                ax.scatter(geo["node_x"][r][which], np.full(int(which.sum()), geo["row_y"][r]),
                           s=size * (1.6 if marker == "s" else 1.0), zorder=3, marker=marker,
                           c=["white" if alive else "#d0d0d0" for alive in live[r][which]],
                           edgecolors="black", linewidths=0.9)
        for k in np.flatnonzero(squares[r]):
            ax.text(geo["node_x"][r][k], geo["row_y"][r], "×", ha="center", va="center",
                    fontsize=8, zorder=4)
    fontsize = 11 if max(rows) <= 12 else 8
    for k, text in enumerate(in_labels):
        ax.text(geo["node_x"][0][k], geo["row_y"][0] - 0.14, text, ha="center", va="top",
                fontsize=fontsize)
    for k, text in enumerate(out_labels):
        ax.text(geo["node_x"][-1][k], geo["row_y"][-1] + 0.14, text, ha="center",
                va="bottom", fontsize=fontsize)


def plot_kan(model, x, to_file=None, figsize=None, show_scores=True, title=None,
             max_points=128, input_names=None, output_names=None, dpi=150, show=False):
    """Draw `model` like the KAN paper: nodes in rows, one curve per edge.

    Rows of nodes go from the model input (bottom) to the output (top). Every
    unmasked edge `i -> j` of each `keras_kan.KANDense` gets a small
    inset with its learned `phi_ij` plotted over the range of the values that
    reach input `i` for `x` (sorted samples, not a uniform grid), linked by
    lines to both nodes. With `show_scores`, the edge's importance score
    `s = std(phi_ij) / (std(x_i) + 0.1)` on `x` (the same score as
    `layer.edge_scores` and pruning) sets its opacity `tanh(3 s / max_s)`
    (`max_s` per layer) and its line width, so the edges that matter stand
    out. With `show_scores="attribution"` the opacities follow
    `keras_kan.feature_scores`' edge scores instead (normalized per layer)
    and every input is labelled with its feature score. Masked (pruned) edges
    are not drawn. Nodes with no live edge are grey. Symbolic edges are drawn
    in red with their formula `c*f(a*x+b)+d` above the curve.

    Crowded layers stagger their insets over up to four levels; layers with
    too many edges even for that are drawn with plain node-to-node lines. KAN
    layers separated by other layers are drawn as separate bands.

    Args:
        model: a `keras.Model` (Sequential or functional, one input) that
            contains KANDense layers, e.g. `keras_kan.KAN([2, 5, 1])`.
        x: `(N, n_in)` samples of the model input (N >= 2); NumPy or tensor.
            At most 20000 evenly spaced rows are used (fewer for huge layers).
        to_file: optional path; the format follows the extension (`.png`,
            `.pdf`, `.svg`, ...). Parent directories are created.
        figsize: `(width, height)` in inches; default grows with the network.
        show_scores: True: scale opacity and width by edge importance;
            `"attribution"`: by attribution scores, inputs labelled with
            their feature scores; False: all unmasked edges alike.
        title: optional title above the network.
        max_points: points per edge curve (>= 2).
        input_names, output_names: optional node labels (strings, mathtext
            allowed); default `x_1 .. x_n` and `y` (or `y_1 .. y_m`).
        dpi: resolution for raster files.
        show: also display the figure through `matplotlib.pyplot` (the
            active backend). By default pyplot is never imported.

    Returns:
        the `matplotlib.figure.Figure`. Its network axes has label
        `"kan_network"`; each edge inset has label `"kan_edge_{l}_{i}_{j}"`
        (`l` counts KANDense layers from 0).

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: no KANDense layer, `x` of the wrong shape or not finite,
            bad `figsize`/`max_points`/names/file extension.
    """
    Figure, FigureCanvasAgg, LineCollection = _require_matplotlib()
    layers = kan_layers(model, "plot_kan")
    max_points = check_int("max_points", max_points, 2)
    if figsize is not None:
        try:
            figsize = tuple(float(v) for v in figsize)
        except (TypeError, ValueError):
            figsize = ()
        if len(figsize) != 2 or not all(math.isfinite(v) and v > 0 for v in figsize):
            raise ValueError(f"`figsize` must be (width, height) in inches > 0, got {figsize!r}.")
    target = None if to_file is None else _file_format(to_file, FigureCanvasAgg)
    data = model_samples(model, x)
    in_labels = _names(input_names, data.shape[1], "x", "input_names")
    last = node_steps(model, layers)[-1]
    out_labels = _names(output_names, layers[-1].units if last is None else last.units, "y",
                        "output_names")
    cap = max(2000, 4_000_000 // max(layer.input_dim * layer.units for layer in layers))
    data = data[even_rows(data.shape[0], cap)]
    attribution = None
    if isinstance(show_scores, str):
        if show_scores != "attribution":
            raise ValueError(f"Received an invalid value for argument `show_scores`: expected "
                             f"True, False or 'attribution', got {show_scores!r}.")
        from keras_kan.attribution import layer_scores

        nodes, attribution = layer_scores(model, data)
        inputs_scored = nodes[0]
        in_labels = [f"{label} ({score:.2g})" for label, score in zip(in_labels, inputs_scored)]
    rows, bands = _collect(model, layers, chain_inputs(model, layers, data), show_scores,
                           max_points, attribution)
    geo = _layout(rows, bands, figsize, title)

    if show:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(geo["width"], geo["height"]))
    else:
        fig = Figure(figsize=(geo["width"], geo["height"]))
        FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0), label="kan_network")
    ax.set_xlim(0.0, geo["width"])
    ax.set_ylim(0.0, geo["height"])
    ax.set_axis_off()
    lines = _Lines()
    for gap in range(len(rows) - 1):
        _draw_gap(fig, ax, geo, gap, lines)
    if lines.segments:
        ax.add_collection(LineCollection(lines.segments, colors=lines.colors,
                                         linewidths=lines.widths, zorder=1))
    _draw_nodes(ax, geo, rows, bands, in_labels, out_labels)
    if title:
        ax.text(geo["width"] / 2, geo["height"] - 0.12, str(title), ha="center", va="top",
                fontsize=12)
    if target is not None:
        path, extension = target
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=dpi, format=extension)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return fig
