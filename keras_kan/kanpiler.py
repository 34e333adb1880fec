"""From a formula to a model (pykan's `kanpiler` / `expr2kan`): `expression_to_kan`.

A sympy expression becomes a KAN of sum and multiplication nodes whose every
edge is symbolic (`c * f(a * x + b) + d`, `keras_kan.symbolic_edges`), so the
model computes the expression exactly (up to float32 rounding) and can be
fine-tuned on data (`fit_lbfgs`, or `unfix_symbolic` to turn edges back into
splines). How an expression is compiled:

* `Add`: a sum node; each addend `k * g` is one edge into it (the number `k`
  goes into the edge's `c`, the addends' numbers into its `d`);
* `Mul` of `a >= 2` non-numeric factors: a mult node of arity `a`
  (`keras_kan.products.MultNodes`), one subnode per factor;
* a function of the library applied to an affine argument, `f(k * g + b)`
  (`sin`, `exp`, `log`, `tanh`, `Abs`, ... : every registered function whose
  sympy form is `F(x)`): an edge `c * f(k * h + b) + d` from the node `h`
  computing `g`; powers `g**p` whose exponent the library has (`x^2` ..
  `x^5`, `1/x` .. `1/x^5`, `sqrt`, `x^1.5`, `1/sqrt(x)`) are edges the same
  way; other integer powers are products (`g**6`: a mult node of arity 6,
  `g**-6`: `1/x` of it);
* a node needed more than one layer later is carried by identity edges
  (`x`), and equal subexpressions share one node.

The widths follow: layer `l` holds the nodes at depth `l` (sum nodes first,
then mult nodes, pykan's order), the last layer the outputs.
"""

import re

import numpy as np
import sympy

from keras_kan import symbolic_edges
from keras_kan.models import KAN
from keras_kan.network import kan_layers
from keras_kan.symbolic_library import candidate_names, get_function, sympy_function

__all__ = ["expression_to_kan"]


class _Node:
    """A value of the compiled network: an input, a sum node or a mult node."""

    def __init__(self, kind, terms=(), const=0.0, factors=(), index=None):
        self.kind = kind  # "input" | "sum" | "mult"
        self.terms = list(terms)  # sum: [(name, a, b, c, source _Node)]
        self.const = float(const)
        self.factors = list(factors)  # mult: [(terms, const)], one per subnode
        self.index = index  # input: the variable's position
        self._level = 0 if kind == "input" else None

    def subnodes(self):
        return [(self.terms, self.const)] if self.kind == "sum" else self.factors

    @property
    def level(self):
        if self._level is None:
            sources = [t[4].level for terms, _ in self.subnodes() for t in terms]
            self._level = 1 + max(sources, default=0)
        return self._level


def _library():
    """`(functions, powers)`: sympy function class -> name, exponent -> name, read
    from the registry (every non-alias function whose form is `F(x)` or `x**p`)."""
    u = sympy.Symbol("u")
    functions, powers = {}, {}
    for name in candidate_names():
        form = sympy.sympify(sympy_function(name)(u))
        if form.is_Pow and form.base == u and form.exp.is_number:
            powers.setdefault(form.exp, name)
        elif isinstance(form, sympy.Function) and form.args == (u,):
            functions.setdefault(form.func, name)
    return functions, powers


class _Compiler:
    def __init__(self, symbols):
        self.symbols = symbols
        self.inputs = [_Node("input", index=k) for k in range(len(symbols))]
        self.by_symbol = dict(zip(symbols, self.inputs))
        self.cache = {}
        self.functions, self.powers = _library()

    # ------------------------------------------------------------ numbers
    def number(self, value, where):
        try:
            out = complex(sympy.sympify(value).evalf())
        except (TypeError, ValueError):
            out = complex("nan")
        if out.imag != 0 or not np.isfinite(out.real):
            raise ValueError(f"expression_to_kan: the constant {value} in {where} is not a "
                             "finite real number.")
        return out.real

    def affine(self, arg):
        """`arg = a * core + b` with numbers `a, b` -> `(a, b, core)`."""
        b, rest = arg.as_independent(*self.symbols, as_Add=True)
        if rest == 0:
            raise ValueError(f"expression_to_kan: {arg} has no variable.")
        a, core = rest.as_independent(*self.symbols, as_Add=False)
        return self.number(a, arg), self.number(b, arg), core

    # ------------------------------------------------------------- terms
    def terms(self, expr, scale=1.0):
        """A sum `scale * expr` -> `(terms, const)`, one term per addend."""
        const, rest = expr.as_independent(*self.symbols, as_Add=True)
        const = scale * self.number(const, expr)
        out = []
        for addend in sympy.Add.make_args(rest):
            if addend == 0:
                continue
            coeff, core = addend.as_independent(*self.symbols, as_Add=False)
            c = scale * self.number(coeff, addend)
            if core.is_Add:
                inner, inner_const = self.terms(core, c)
                out += inner
                const += inner_const
            else:
                name, a, b, source = self.edge(core)
                out.append((name, a, b, c, source))
        return self._distinct(out), const

    def _distinct(self, terms):
        """Two edges cannot join the same pair of nodes: a repeated source is
        carried by a fresh identity node."""
        seen, out = set(), []
        for name, a, b, c, source in terms:
            if id(source) in seen:
                source = _Node("sum", [("x", 1.0, 0.0, 1.0, source)])
            seen.add(id(source))
            out.append((name, a, b, c, source))
        return out

    def edge(self, core):
        """A non-numeric, non-sum `core` as one edge `(name, a, b, source)`."""
        if core.is_Symbol:
            return "x", 1.0, 0.0, self.node(core)
        if core.is_Mul:
            return "x", 1.0, 0.0, self.node(core)
        if core.is_Pow:
            base, exponent = core.args
            if exponent.free_symbols:
                raise ValueError(f"expression_to_kan: {core} has a variable exponent; only "
                                 "numeric exponents are supported.")
            name = self.powers.get(sympy.nsimplify(exponent))
            if name is not None:
                a, b, inner = self.affine(base)
                return name, a, b, self.node(inner)
            if exponent.is_Integer and int(exponent) >= 2:
                return "x", 1.0, 0.0, self.node(core)
            if exponent.is_Integer and -1 in self.powers:
                return self.powers[-1], 1.0, 0.0, self.node(base ** (-exponent))
            raise ValueError(f"expression_to_kan: the power {core} has no library function "
                             f"(exponents {sorted(self.powers, key=float)}) and is not an "
                             "integer power.")
        if isinstance(core, sympy.Function) and core.func in self.functions:
            if len(core.args) != 1:
                raise ValueError(f"expression_to_kan: {core} takes {len(core.args)} "
                                 "arguments; edges are functions of one.")
            a, b, inner = self.affine(core.args[0])
            return self.functions[core.func], a, b, self.node(inner)
        known = sorted(str(f) for f in self.functions)
        raise ValueError(
            f"expression_to_kan: cannot compile {core} ({type(core).__name__}). Supported: "
            f"numbers, the variables, +, *, numeric powers and the library's functions "
            f"{known} (register more with keras_kan.add_symbolic).")

    # -------------------------------------------------------------- nodes
    def node(self, core):
        """The node computing `core` (cached: equal subexpressions share it)."""
        if core.is_Symbol:
            if core not in self.by_symbol:
                raise ValueError(f"expression_to_kan: the symbol {core} is not one of the "
                                 f"variables {list(self.symbols)}.")
            return self.by_symbol[core]
        if core in self.cache:
            return self.cache[core]
        if core.is_Mul:
            coeff, rest = core.as_independent(*self.symbols, as_Add=False)
            factors = list(sympy.Mul.make_args(rest))
        elif core.is_Pow and core.exp.is_Integer and int(core.exp) >= 2 and \
                sympy.nsimplify(core.exp) not in self.powers:
            coeff, factors = 1, [core.base] * int(core.exp)
        else:
            coeff, factors = None, None
        if factors is not None and len(factors) >= 2:
            scale = self.number(coeff, core)
            subnodes = [self.terms(f, scale if k == 0 else 1.0) for k, f in enumerate(factors)]
            result = _Node("mult", factors=subnodes)
        else:
            result = _Node("sum", *self.terms(core))
        self.cache[core] = result
        return result


def _natural_key(symbol):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(symbol))]


def _placement(outputs, inputs):
    """`levels[l]`: the nodes of layer `l` (sum nodes first), and `at(node, l)`:
    the node carrying `node`'s value at level `l` (itself or an identity copy)."""
    depth = max(node.level for node in outputs)
    for node in outputs:
        node._level = depth
    levels = [list(inputs)] + [[] for _ in range(depth)]
    carried = {}

    def at(node, level):
        if node.level == level:
            if node.kind != "input" and not any(n is node for n in levels[level]):
                levels[level].append(node)
                for terms, _ in node.subnodes():
                    for term in terms:
                        at(term[4], level - 1)
            return node
        key = (id(node), level)
        if key not in carried:
            carried[key] = _Node("sum", [("x", 1.0, 0.0, 1.0, node)])
            carried[key]._level = level
            levels[level].append(carried[key])
            at(node, level - 1)
        return carried[key]

    for node in outputs:
        at(node, depth)
    for level in range(1, depth):
        levels[level] = ([n for n in levels[level] if n.kind == "sum"]
                         + [n for n in levels[level] if n.kind == "mult"])
    return levels, at


def expression_to_kan(expr, variables=None, seed=0, name=None, **layer_kwargs):
    """A KAN computing `expr` exactly, with every edge symbolic (pykan's `expr2kan`).

    See the module docstring for how sums, products, powers and functions are
    compiled. The model is a `keras_kan.KAN` (KANDense and `MultNodes`), so it
    trains (`fit_lbfgs` fine-tunes the constants `a, b, c, d` on data), saves,
    loads, exports, and `symbolic_formula` reads the expression back.

    ```python
    >>> model = expression_to_kan("x_1 * x_2 + sin(pi * x_3)")
    >>> model(np.array([[2., 3., 0.5]]))   # [[7.]]
    ```

    Args:
        expr: a sympy expression or string, or a list of them (one per output).
        variables: the inputs, in order (sympy Symbols or names); default: the
            expression's free symbols in natural order (`x_2` before `x_10`).
        seed: the seed of the (masked-off) splines' initial weights.
        name: the model's name.
        **layer_kwargs: passed to every `KANDense` (`grid_size`, `grid_range`,
            ...): the splines an edge gets back with `unfix_symbolic`.

    Returns:
        a built `keras.Sequential` with `len(variables)` inputs and one output
        per expression.

    Raises:
        ValueError: an expression that is not made of numbers, the variables,
            `+`, `*`, numeric powers and the library's one-argument functions,
            a symbol that is not a variable, or a non-real constant.
    """
    exprs = list(expr) if isinstance(expr, (list, tuple)) else [expr]
    if not exprs:
        raise ValueError("expression_to_kan needs at least one expression.")
    try:
        exprs = [sympy.sympify(e) for e in exprs]
    except (sympy.SympifyError, TypeError) as error:
        raise ValueError(f"expression_to_kan: cannot read {expr!r} as a sympy "
                         f"expression ({error}).") from error
    if variables is None:
        free = set().union(*(e.free_symbols for e in exprs))
        symbols = sorted(free, key=_natural_key)
    else:
        symbols = [v if isinstance(v, sympy.Symbol) else sympy.Symbol(str(v))
                   for v in variables]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"expression_to_kan: `variables` repeats a name: {symbols}.")
    unknown = set().union(*(e.free_symbols for e in exprs)) - set(symbols)
    if unknown:
        raise ValueError(f"expression_to_kan: the symbol(s) {sorted(map(str, unknown))} are "
                         f"not one of the variables {[str(s) for s in symbols]}.")
    if not symbols:
        raise ValueError("expression_to_kan: the expression has no variable; give "
                         "`variables` to build a model of a constant.")
    compiler = _Compiler(symbols)
    outputs = [_Node("sum", *compiler.terms(e)) for e in exprs]
    levels, at = _placement(outputs, compiler.inputs)
    width, arity = [len(symbols)], [[]]
    for nodes in levels[1:-1]:
        mults = [n for n in nodes if n.kind == "mult"]
        width.append([len(nodes) - len(mults), len(mults)])
        arity.append([len(n.factors) for n in mults])
    width.append(len(outputs))
    arity.append([])
    model = KAN(width, seed=seed, name=name, mult_arity=arity, **layer_kwargs)
    before = list(model.trainable_variables)
    for level, layer in enumerate(kan_layers(model, "expression_to_kan"), start=1):
        position = {id(n): k for k, n in enumerate(levels[level - 1])}
        subnodes = [s for n in levels[level] for s in n.subnodes()]
        layer.edge_mask.assign(np.zeros(tuple(layer.edge_mask.shape), layer.edge_mask.dtype))
        for j, (terms, const) in enumerate(subnodes):
            if not terms:  # a constant output: d of a zero edge
                symbolic_edges.set_edge(layer, 0, j, "0", (1.0, 0.0, 1.0, const))
                continue
            for k, (fn, a, b, c, source) in enumerate(terms):
                get_function(fn)
                i = position[id(at(source, level - 1))]
                symbolic_edges.set_edge(layer, i, j, fn, (a, b, c, const if k == 0 else 0.0))
    symbolic_edges.reset_model(model, before)
    return model
