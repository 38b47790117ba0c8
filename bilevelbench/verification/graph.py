"""The family-independent way a proxy exports itself for worst-case verification: a :class:`ProxyGraph`.

A verifiable solver implements ``export_graph(spec) -> ProxyGraph`` next to ``setup`` and ``solve``. The graph
is the function ``solve`` computes, written as a chain of layers acting on a vector ``z`` that starts as the
instance's parameter vector ``x`` (one named parameter, flattened); a layer may also read ``x`` itself (a
repair layer reads the demand or the capacities from it). Every layer here is piecewise linear, so the
verifier encodes it exactly in a MILP (:mod:`bilevelbench.verification.encode`) and runs it in torch for the
gradient attack (:mod:`bilevelbench.verification.attack`):

========================  ===================================================================================
``Affine(W, b)``          ``z <- W z + b`` (fold input normalisation into the first one)
``ReLU()``                ``z <- max(z, 0)``
``Clamp(lo, hi)``         ``z <- min(max(z, lo), hi)`` elementwise
``ShiftClip(lo, hi,       ``z <- clip(z + t, lo, hi)`` with the scalar ``t`` that makes ``sum z = a . x + c``
a, c)``                   (Euclidean projection onto a capped simplex: the DC-OPF hypersimplex projection)
``GreedyRepair(W, C,      0/1 items in index order: item ``j`` is taken when ``z_j > 0`` and it still fits,
c)``                      ``W[:, j] <= r`` with remaining capacity ``r`` starting at ``C x + c`` (a packing
                          feasibility-restoring layer)
``Sigmoid()``             exported so a proxy can say what it holds; not piecewise linear, so the verifier
                          refuses it with one line naming it
========================  ===================================================================================

The graph is plain arrays: no pickles, no torch modules, and it can be written to and read from JSON
(:meth:`ProxyGraph.to_dict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bilevelbench.errors import UnsupportedLayerError, UsageError

#: The layers the verifier encodes exactly.
SUPPORTED = ("affine", "relu", "clamp", "shift_clip", "greedy_repair")


def _vec(a, name: str) -> np.ndarray:
    out = np.asarray(a, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(out)):
        raise UsageError(f"proxy graph: {name} must be finite")
    return out


@dataclass(frozen=True)
class Affine:
    """``z <- W z + b``; ``weight`` is (out, in), ``bias`` (out,)."""

    weight: np.ndarray
    bias: np.ndarray
    kind: str = field(default="affine", init=False)

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=np.float64)
        if w.ndim != 2 or not np.all(np.isfinite(w)):
            raise UsageError(f"proxy graph: affine weight must be a finite (out, in) matrix, got shape {w.shape}")
        b = _vec(self.bias, "affine bias")
        if b.shape != (w.shape[0],):
            raise UsageError(f"proxy graph: affine bias has shape {b.shape}, expected ({w.shape[0]},)")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)

    def width(self, width_in: int) -> int:
        if self.weight.shape[1] != width_in:
            raise UsageError(f"proxy graph: affine layer takes {self.weight.shape[1]} inputs, receives {width_in}")
        return self.weight.shape[0]


@dataclass(frozen=True)
class ReLU:
    """``z <- max(z, 0)``."""

    kind: str = field(default="relu", init=False)

    def width(self, width_in: int) -> int:
        return width_in


@dataclass(frozen=True)
class Clamp:
    """``z <- min(max(z, lower), upper)`` elementwise (``lower <= upper``)."""

    lower: np.ndarray
    upper: np.ndarray
    kind: str = field(default="clamp", init=False)

    def __post_init__(self) -> None:
        lo, hi = _vec(self.lower, "clamp lower"), _vec(self.upper, "clamp upper")
        if lo.shape != hi.shape or np.any(lo > hi):
            raise UsageError("proxy graph: clamp needs lower <= upper of one shape")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)

    def width(self, width_in: int) -> int:
        if self.lower.size != width_in:
            raise UsageError(f"proxy graph: clamp has {self.lower.size} bounds, receives {width_in} values")
        return width_in


@dataclass(frozen=True)
class ShiftClip:
    """``z <- clip(z + t, lower, upper)`` with ``t`` such that ``sum z = total_weight . x + total_offset``.

    Outside ``[sum lower, sum upper]`` no shift balances; the forward pass then returns the nearest bound
    vector, and the verifier excludes such parameters (no feasible instance has them, see
    :class:`~bilevelbench.verification.problem.VerificationProblem`).
    """

    lower: np.ndarray
    upper: np.ndarray
    total_weight: np.ndarray
    total_offset: float
    kind: str = field(default="shift_clip", init=False)

    def __post_init__(self) -> None:
        lo, hi = _vec(self.lower, "shift_clip lower"), _vec(self.upper, "shift_clip upper")
        if lo.shape != hi.shape or np.any(lo > hi):
            raise UsageError("proxy graph: shift_clip needs lower <= upper of one shape")
        object.__setattr__(self, "lower", lo)
        object.__setattr__(self, "upper", hi)
        object.__setattr__(self, "total_weight", _vec(self.total_weight, "shift_clip total_weight"))
        object.__setattr__(self, "total_offset", float(self.total_offset))

    def width(self, width_in: int) -> int:
        if self.lower.size != width_in:
            raise UsageError(f"proxy graph: shift_clip has {self.lower.size} bounds, receives {width_in} values")
        return width_in

    def total(self, x: np.ndarray) -> np.ndarray:
        return x @ self.total_weight + self.total_offset


@dataclass(frozen=True)
class GreedyRepair:
    """0/1 items in index order: ``y_j = [z_j > 0] * [W[:, j] <= r_j]``, ``r_{j+1} = r_j - W[:, j] y_j``, with
    ``r_1 = capacity_weight @ x + capacity_offset``. Every output meets ``W y <= r_1`` (when ``r_1 >= 0``)."""

    weight: np.ndarray
    capacity_weight: np.ndarray
    capacity_offset: np.ndarray
    kind: str = field(default="greedy_repair", init=False)

    def __post_init__(self) -> None:
        w = np.asarray(self.weight, dtype=np.float64)
        cw = np.asarray(self.capacity_weight, dtype=np.float64)
        co = _vec(self.capacity_offset, "greedy_repair capacity_offset")
        if w.ndim != 2 or np.any(w < 0) or not np.all(np.isfinite(w)):
            raise UsageError("proxy graph: greedy_repair weight must be a finite, non-negative (m, n) matrix")
        if cw.ndim != 2 or cw.shape[0] != w.shape[0] or co.shape != (w.shape[0],):
            raise UsageError(f"proxy graph: greedy_repair capacity_weight must be ({w.shape[0]}, nx) and "
                             f"capacity_offset ({w.shape[0]},); got {cw.shape} and {co.shape}")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "capacity_weight", cw)
        object.__setattr__(self, "capacity_offset", co)

    def width(self, width_in: int) -> int:
        if self.weight.shape[1] != width_in:
            raise UsageError(f"proxy graph: greedy_repair has {self.weight.shape[1]} items, receives {width_in}")
        return width_in

    def capacity(self, x: np.ndarray) -> np.ndarray:
        return x @ self.capacity_weight.T + self.capacity_offset


@dataclass(frozen=True)
class Sigmoid:
    """``z <- 1 / (1 + exp(-z))``: not piecewise linear, so not verifiable (exported only to be named)."""

    kind: str = field(default="sigmoid", init=False)

    def width(self, width_in: int) -> int:
        return width_in


Layer = Affine | ReLU | Clamp | ShiftClip | GreedyRepair | Sigmoid
_KINDS = {"affine": Affine, "relu": ReLU, "clamp": Clamp, "shift_clip": ShiftClip, "greedy_repair": GreedyRepair,
          "sigmoid": Sigmoid}


@dataclass(frozen=True)
class ProxyGraph:
    """A proxy as a chain of layers from one parameter (``input``) to one decision (``output``).

    Attributes
    ----------
    input : str
        The parameter the proxy reads (``"pd"``); flattened to a vector ``x`` of ``n_inputs``.
    output : str
        The decision it returns (``"pg"``).
    n_inputs : int
    layers : tuple of layers
    description : str
        Free text shown in the record (architecture, weights file).
    """

    input: str
    output: str
    n_inputs: int
    layers: tuple
    description: str = ""

    def __post_init__(self) -> None:
        width = int(self.n_inputs)
        for layer in self.layers:
            width = layer.width(width)
        object.__setattr__(self, "layers", tuple(self.layers))

    @property
    def n_outputs(self) -> int:
        width = int(self.n_inputs)
        for layer in self.layers:
            width = layer.width(width)
        return width

    def check_supported(self) -> None:
        """Raise :class:`UnsupportedLayerError` naming the first layer the verifier cannot encode exactly."""
        for i, layer in enumerate(self.layers):
            if layer.kind not in SUPPORTED:
                raise UnsupportedLayerError(
                    f"layer {i} of the proxy ({layer.kind}) is not piecewise linear, so it cannot be verified "
                    f"exactly; the verifier supports {', '.join(SUPPORTED)}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The proxy's output (B, n_outputs) for parameters ``x`` (B, n_inputs), in float64 NumPy."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        z = x
        for layer in self.layers:
            z = _forward_layer(layer, z, x)
        return z

    def to_dict(self) -> dict:
        """JSON-ready description (lists of numbers)."""
        layers = []
        for layer in self.layers:
            entry = {"kind": layer.kind}
            for key, value in vars(layer).items():
                if key != "kind":
                    entry[key] = value.tolist() if isinstance(value, np.ndarray) else value
            layers.append(entry)
        return {"input": self.input, "output": self.output, "n_inputs": int(self.n_inputs), "layers": layers,
                "description": self.description}

    @classmethod
    def from_dict(cls, data: dict) -> ProxyGraph:
        """Inverse of :meth:`to_dict`; unknown layer kinds raise :class:`UnsupportedLayerError`."""
        layers = []
        for entry in data["layers"]:
            entry = dict(entry)
            kind = entry.pop("kind")
            if kind not in _KINDS:
                raise UnsupportedLayerError(f"unknown proxy layer {kind!r}; known: {', '.join(_KINDS)}")
            layers.append(_KINDS[kind](**entry))
        return cls(data["input"], data["output"], int(data["n_inputs"]), tuple(layers), data.get("description", ""))


def _forward_layer(layer, z: np.ndarray, x: np.ndarray) -> np.ndarray:
    if layer.kind == "affine":
        return z @ layer.weight.T + layer.bias
    if layer.kind == "relu":
        return np.maximum(z, 0.0)
    if layer.kind == "clamp":
        return np.clip(z, layer.lower, layer.upper)
    if layer.kind == "shift_clip":
        from bilevelbench.torch.projection import project_numpy

        return project_numpy(z, layer.total(x), layer.lower, layer.upper)
    if layer.kind == "greedy_repair":
        return greedy_repair(z, layer.weight, layer.capacity(x))
    if layer.kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.clip(z, -700, 700)))
    raise UnsupportedLayerError(f"unknown proxy layer {layer.kind!r}")


def greedy_repair(scores: np.ndarray, weight: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Take items in index order when their score is positive and they still fit (B, n) 0/1.

    Parameters
    ----------
    scores : (B, n) array
        The network's item scores (``> 0``: wanted).
    weight : (m, n) array
        Non-negative item weights.
    capacity : (B, m) array
        Capacities.

    Returns
    -------
    (B, n) float array of 0/1 with ``weight @ y <= capacity`` wherever ``capacity >= 0``.
    """
    scores = np.atleast_2d(scores)
    remaining = np.array(np.atleast_2d(capacity), dtype=np.float64, copy=True)
    y = np.zeros(scores.shape, dtype=np.float64)
    for j in range(scores.shape[1]):
        take = (scores[:, j] > 0) & np.all(weight[:, j] <= remaining, axis=1)
        y[:, j] = take
        remaining -= np.outer(take, weight[:, j])
    return y
