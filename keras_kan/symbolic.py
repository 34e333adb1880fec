"""Symbolic regression of KAN edges and closed-form formulas (needs sympy).

Every edge `phi_ij` of a `keras_kan.KANDense` is a 1-D function. This
package-level module gathers the symbolic tools, which live by job in:

* `keras_kan.symbolic_library`: the one registry of functions `f`
  (`add_symbolic`, `remove_symbolic`);
* `keras_kan.symbolic_fit`: fitting `c * f(a * x + b) + d` to one edge's
  values and ranking the library (`fit_function`);
* `keras_kan.symbolic_model`: editing a model in place (`auto_symbolic`,
  `fix_symbolic`, `unfix_symbolic`) and the analyses around it
  (`suggest_symbolic` ranks one edge's functions, `symbolic_report` reads
  the symbolic edges back);
* `keras_kan.symbolic_refit`: refitting all symbolic constants jointly
  against data (`polish_symbolic`);
* `keras_kan.symbolic_formulas`: formulas (`symbolic_formula`,
  `readable_formula`, `evaluate_formula`, `formula_r2`);
* `keras_kan.kanpiler`: the way back, from a formula to a model of sum and
  mult nodes with symbolic edges (`expression_to_kan`, pykan's `expr2kan`);
* `keras_kan.factors`: greedy simplifications judged by the retrained loss
  (`separate_factors` for a product's factors, `linearize_edges` for nearly
  straight edges), for models whose edge-by-edge formula is not exact.

The usual recipe: train, `prune`, then `auto_symbolic(model, x, y)` (per-edge
choices, a joint refit against the data, runner-ups where a choice is
ill-conditioned or the error stays high), optionally a few `fit_lbfgs` steps,
and `symbolic_formula(model, x, y)` for the snapped, readable formula. The
edits return None and print nothing unless `verbose=1`; `symbolic_report`
tells what they chose.
"""

try:
    import sympy  # noqa: F401
except ImportError as error:  # pragma: no cover - exercised only without sympy
    raise ImportError(
        "keras_kan.symbolic needs sympy, which is not installed. Install it with "
        "`pip install keras-kan[symbolic]` (or `pip install sympy`)."
    ) from error

from keras_kan.factors import linearize_edges, separate_factors
from keras_kan.kanpiler import expression_to_kan
from keras_kan.symbolic_fit import SymbolicFit, fit_function
from keras_kan.symbolic_formulas import (
    evaluate_formula,
    formula_r2,
    readable_formula,
    symbolic_formula,
)
from keras_kan.symbolic_library import add_symbolic, registered_names, remove_symbolic
from keras_kan.symbolic_model import (
    auto_symbolic,
    fix_symbolic,
    suggest_symbolic,
    symbolic_report,
    unfix_symbolic,
)
from keras_kan.symbolic_refit import polish_symbolic

__all__ = [
    "SymbolicFit",
    "fit_function",
    "suggest_symbolic",
    "auto_symbolic",
    "fix_symbolic",
    "unfix_symbolic",
    "symbolic_report",
    "polish_symbolic",
    "add_symbolic",
    "remove_symbolic",
    "registered_names",
    "symbolic_formula",
    "readable_formula",
    "evaluate_formula",
    "formula_r2",
    "expression_to_kan",
    "separate_factors",
    "linearize_edges",
]
