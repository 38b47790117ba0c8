"""``dcopf``: economic dispatch on a PGLib grid with MATPOWER's DC conventions.

For a load vector ``pd`` (MW, one entry per bus; the instance's parameters) the problem is

    min_{pg, xi}  sum_g (c2_g pg_g^2 + c1_g pg_g + c0_g) + M sum_l xi_l
    s.t.          sum_g pg_g = sum_b (pd_b + gs_b)                       (power balance)
                  -rate_l - xi_l <= f_l(pg, pd) <= rate_l + xi_l, xi >= 0 (thermal limits, softened)
                  pmin <= pg <= pmax                                       (generator limits)

with the DC flows ``f = PTDF (Cg pg - pd - gs - Pbusinj) + Pfinj`` of MATPOWER's ``makeBdc``: a branch's
susceptance is ``b = 1 / (x * tap)``, a phase shifter ``shift`` adds the injections ``Pfinj = -b shift`` at its
ends, shunt conductances ``gs`` (MW at 1 p.u.) are demand, the reference bus's angle is 0. Branches whose
``rateA`` is 0 have no limit. ``M`` (``$/MW``, default 1500: PGLearn's 150000 per unit at baseMVA 100) prices the
thermal violation ``xi``.

A submission predicts ``pg`` only; ``xi`` is implied by the flows (``max(0, |f| - rate)``, the cheapest choice),
so the objective of any dispatch is defined and the evaluator computes it itself.

The PTDF is never formed: :class:`DCOPFStructure` factorises the reduced bus susceptance matrix once
(``scipy.sparse.linalg.splu``) and computes ``PTDF v`` and ``PTDF' w`` by sparse solves, so case2869 costs
milliseconds per instance rather than a dense 4582 x 2869 matrix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from bilevelbench.errors import UsageError

FAMILY = "dcopf"
#: Default price of thermal violations, $/MW (PGLearn: 150000 per unit at baseMVA 100).
DEFAULT_PENALTY = 1500.0
#: Default load sampling: pd = alpha * eta (.) pd_ref, alpha ~ U[0.6, 1.0], eta ~ U[1 - 0.15, 1 + 0.15].
DEFAULT_LOAD_SCALE = (0.6, 1.0)
DEFAULT_LOAD_NOISE = 0.15

STRUCTURE_KEYS = ("gen_bus", "pmin", "pmax", "cost", "branch_from", "branch_to", "b", "shift", "rate", "gs",
                  "pd_ref", "penalty", "base_mva", "ref", "bus_ids")


@dataclass(frozen=True, eq=False)
class DCOPFStructure:
    """One grid: everything an instance shares (arrays indexed by bus, generator and in-service branch).

    Attributes
    ----------
    gen_bus : (ng,) int
        Bus index of each in-service generator.
    pmin, pmax : (ng,) float
        Generator limits, MW.
    cost : (ng, 3) float
        ``c2`` ($/MW^2h), ``c1`` ($/MWh), ``c0`` ($/h).
    branch_from, branch_to : (nl,) int
        End buses of each in-service branch.
    b : (nl,) float
        ``1 / (x * tap)`` (per unit).
    shift : (nl,) float
        Phase shift, radians.
    rate : (nl,) float
        Thermal limit (``rateA``), MW; ``inf`` where unlimited.
    gs : (nb,) float
        Shunt conductance, MW at 1 p.u.
    pd_ref : (nb,) float
        The case's loads, MW (what the sampler scales).
    penalty : float
        ``M``, $/MW of thermal violation.
    base_mva : float
    ref : int
        Reference bus index.
    bus_ids : (nb,) int
        The case file's bus numbers.
    case : str
        Case name (e.g. ``pglib_opf_case118_ieee``).
    """

    gen_bus: np.ndarray
    pmin: np.ndarray
    pmax: np.ndarray
    cost: np.ndarray
    branch_from: np.ndarray
    branch_to: np.ndarray
    b: np.ndarray
    shift: np.ndarray
    rate: np.ndarray
    gs: np.ndarray
    pd_ref: np.ndarray
    penalty: float
    base_mva: float
    ref: int
    bus_ids: np.ndarray
    case: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        nb, ng, nl = self.n_bus, self.n_gen, self.n_branch
        shapes = {"pmin": (ng,), "pmax": (ng,), "cost": (ng, 3), "branch_to": (nl,), "b": (nl,), "shift": (nl,),
                  "rate": (nl,), "gs": (nb,), "bus_ids": (nb,)}
        for key, shape in shapes.items():
            if np.shape(getattr(self, key)) != shape:
                raise UsageError(f"dcopf structure: {key} has shape {np.shape(getattr(self, key))}, expected {shape}")
        if not 0 <= int(self.ref) < nb:
            raise UsageError(f"dcopf structure: reference bus {self.ref} outside 0..{nb - 1}")
        for key in ("gen_bus", "branch_from", "branch_to"):
            idx = np.asarray(getattr(self, key))
            if idx.size and (idx.min() < 0 or idx.max() >= nb):
                raise UsageError(f"dcopf structure: {key} names buses outside 0..{nb - 1}")
        if np.any(self.pmin > self.pmax):
            raise UsageError("dcopf structure: some generator has pmin > pmax")
        if not (np.isfinite(self.penalty) and self.penalty > 0):
            raise UsageError(f"dcopf structure: the thermal penalty must be positive and finite, got {self.penalty}")

    # -- sizes ----------------------------------------------------------------------------------------------
    @property
    def n_bus(self) -> int:
        return int(np.shape(self.pd_ref)[0])

    @property
    def n_gen(self) -> int:
        return int(np.shape(self.gen_bus)[0])

    @property
    def n_branch(self) -> int:
        return int(np.shape(self.branch_from)[0])

    @property
    def size(self) -> str:
        return f"{self.n_bus}b/{self.n_gen}g/{self.n_branch}l"

    @property
    def limited(self) -> np.ndarray:
        """Indices of the branches with a finite thermal limit."""
        return np.flatnonzero(np.isfinite(self.rate))

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays stored under ``/structure``."""
        return {key: np.asarray(getattr(self, key)) for key in STRUCTURE_KEYS}

    def digest(self) -> str:
        """SHA-256 over every structure array (dtype, shape and bytes, in a fixed order)."""
        h = hashlib.sha256(FAMILY.encode())
        for key in STRUCTURE_KEYS:
            value = np.ascontiguousarray(np.asarray(getattr(self, key), dtype=np.float64))
            h.update(key.encode())
            h.update(str(value.shape).encode())
            h.update(value.tobytes())
        return h.hexdigest()

    # -- network matrices -----------------------------------------------------------------------------------
    @cached_property
    def incidence(self) -> sp.csr_matrix:
        """``Cft`` (nl, nb): +1 at the from bus, -1 at the to bus."""
        nl, nb = self.n_branch, self.n_bus
        rows = np.concatenate([np.arange(nl), np.arange(nl)])
        cols = np.concatenate([self.branch_from, self.branch_to])
        vals = np.concatenate([np.ones(nl), -np.ones(nl)])
        return sp.csr_matrix((vals, (rows, cols)), shape=(nl, nb))

    @cached_property
    def Bf(self) -> sp.csr_matrix:
        """Branch flow matrix, MW per radian: ``f = Bf va + Pfinj``."""
        return (sp.diags(self.base_mva * self.b) @ self.incidence).tocsr()

    @cached_property
    def Bbus(self) -> sp.csc_matrix:
        """Bus susceptance matrix, MW per radian: ``P = Bbus va + Pbusinj``."""
        return (self.incidence.T @ self.Bf).tocsc()

    @cached_property
    def pfinj(self) -> np.ndarray:
        """Flow offsets of phase shifters, MW."""
        return -self.base_mva * self.b * self.shift

    @cached_property
    def pbusinj(self) -> np.ndarray:
        """Bus injections of phase shifters, MW (they sum to zero)."""
        return self.incidence.T @ self.pfinj

    @cached_property
    def _nonref(self) -> np.ndarray:
        return np.delete(np.arange(self.n_bus), int(self.ref))

    @cached_property
    def _lu(self):
        reduced = self.Bbus[self._nonref][:, self._nonref].tocsc()
        return splu(reduced)

    @cached_property
    def Cg(self) -> sp.csr_matrix:
        """Generator-to-bus incidence (nb, ng)."""
        ng = self.n_gen
        return sp.csr_matrix((np.ones(ng), (self.gen_bus, np.arange(ng))), shape=(self.n_bus, ng))

    # -- flows ----------------------------------------------------------------------------------------------
    def injections(self, pg: np.ndarray, pd: np.ndarray) -> np.ndarray:
        """Net bus injections ``Cg pg - pd - gs`` (B, nb), MW."""
        pg, pd = _batch(pg, self.n_gen, "pg"), _batch(pd, self.n_bus, "pd")
        return (self.Cg @ pg.T).T - pd - self.gs

    def angles(self, injections: np.ndarray) -> np.ndarray:
        """Bus angles (B, nb), radians, with the reference at 0, for injections that balance."""
        P = _batch(injections, self.n_bus, "injections")
        va = np.zeros_like(P)
        rhs = (P - self.pbusinj)[:, self._nonref]
        va[:, self._nonref] = self._lu.solve(np.ascontiguousarray(rhs.T)).T
        return va

    def flows(self, pg: np.ndarray, pd: np.ndarray) -> np.ndarray:
        """Branch flows (B, nl), MW, of dispatch ``pg`` at loads ``pd`` (any imbalance lands on the reference bus)."""
        va = self.angles(self.injections(pg, pd))
        return (self.Bf @ va.T).T + self.pfinj

    def ptdf_t(self, w: np.ndarray) -> np.ndarray:
        """``PTDF' w`` (B, nb) for branch weights ``w`` (B, nl); the reference bus's entry is 0."""
        w = _batch(w, self.n_branch, "w")
        g = (self.Bf.T @ w.T).T[:, self._nonref]
        out = np.zeros((w.shape[0], self.n_bus))
        out[:, self._nonref] = self._lu.solve(np.ascontiguousarray(g.T), trans="T").T
        return out

    # -- objective and violations ---------------------------------------------------------------------------
    def thermal_violation(self, flows: np.ndarray) -> np.ndarray:
        """``xi = max(0, |f| - rate)`` (B, nl), MW (0 on unlimited branches)."""
        return np.maximum(0.0, np.abs(flows) - self.rate)

    def generation_cost(self, pg: np.ndarray) -> np.ndarray:
        pg = _batch(pg, self.n_gen, "pg")
        c2, c1, c0 = self.cost[:, 0], self.cost[:, 1], self.cost[:, 2]
        return (c2 * pg * pg + c1 * pg).sum(1) + c0.sum()

    def objective(self, pg: np.ndarray, pd: np.ndarray) -> np.ndarray:
        """Generation cost plus ``M`` times the implied thermal violation (B,)."""
        xi = self.thermal_violation(self.flows(pg, pd))
        return self.generation_cost(pg) + self.penalty * xi.sum(1)

    def balance_residual(self, pg: np.ndarray, pd: np.ndarray) -> np.ndarray:
        """``sum pg - sum (pd + gs)`` (B,), MW."""
        pg, pd = _batch(pg, self.n_gen, "pg"), _batch(pd, self.n_bus, "pd")
        return pg.sum(1) - pd.sum(1) - self.gs.sum()

    def bound_violation(self, pg: np.ndarray) -> np.ndarray:
        """Largest generator-limit violation (B,), MW."""
        pg = _batch(pg, self.n_gen, "pg")
        return np.maximum(0.0, np.maximum(self.pmin - pg, pg - self.pmax)).max(1, initial=0.0)

    # -- duality ----------------------------------------------------------------------------------------------
    def dual_bound(self, pd: np.ndarray, price: np.ndarray, mu_upper: np.ndarray, mu_lower: np.ndarray
                   ) -> np.ndarray:
        """Lagrangian dual value (B,): a lower bound on the optimum for any ``price`` and any ``mu >= 0`` with
        ``mu_upper + mu_lower <= M`` (the multipliers are clipped into that set first, so this is always valid).

        ``price`` is the system energy price (the multiplier of power balance), ``mu_upper`` / ``mu_lower`` the
        multipliers of ``f <= rate + xi`` / ``-f <= rate + xi`` (B, nl; unlimited branches ignored).
        """
        pd = _batch(pd, self.n_bus, "pd")
        B = pd.shape[0]
        price = np.asarray(price, float).reshape(B)
        mu_u, mu_l = self.feasible_multipliers(mu_upper, mu_lower)
        lmp = price[:, None] - self.ptdf_t(mu_u - mu_l)                  # (B, nb)
        r = self.cost[:, 1] - lmp[:, self.gen_bus]                        # reduced cost of each generator
        c2 = self.cost[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            p_star = np.where(c2 > 0, -r / (2 * np.where(c2 > 0, c2, 1.0)), np.where(r > 0, self.pmin, self.pmax))
        p_star = np.clip(p_star, self.pmin, self.pmax)
        gen_part = (c2 * p_star * p_star + r * p_star).sum(1) + self.cost[:, 2].sum()
        f0 = self.flows(np.zeros((B, self.n_gen)), pd)
        rate = np.where(np.isfinite(self.rate), self.rate, 0.0)
        line_part = ((mu_u - mu_l) * f0).sum(1) - ((mu_u + mu_l) * rate).sum(1)
        demand = pd.sum(1) + self.gs.sum()
        return gen_part + price * demand + line_part

    def feasible_multipliers(self, mu_upper: np.ndarray, mu_lower: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clip to ``mu >= 0``, zero on unlimited branches, and scale pairs down so ``mu_u + mu_l <= M``."""
        mu_u = np.maximum(_batch(mu_upper, self.n_branch, "mu_upper"), 0.0)
        mu_l = np.maximum(_batch(mu_lower, self.n_branch, "mu_lower"), 0.0)
        unlimited = ~np.isfinite(self.rate)
        mu_u[:, unlimited] = 0.0
        mu_l[:, unlimited] = 0.0
        total = mu_u + mu_l
        scale = np.where(total > self.penalty, self.penalty / np.where(total > 0, total, 1.0), 1.0)
        return mu_u * scale, mu_l * scale

    def lmp(self, price: np.ndarray, line_dual: np.ndarray) -> np.ndarray:
        """Locational marginal prices (B, nb): ``price - PTDF' (mu_upper - mu_lower)``."""
        line_dual = _batch(line_dual, self.n_branch, "line_dual")
        return np.asarray(price, float).reshape(-1, 1) - self.ptdf_t(line_dual)


# -- sampling ------------------------------------------------------------------------------------------------
def sample_loads(s: DCOPFStructure, rng: np.random.Generator, n: int,
                 load_scale: tuple[float, float] = DEFAULT_LOAD_SCALE,
                 load_noise: float = DEFAULT_LOAD_NOISE) -> np.ndarray:
    """``pd = alpha * eta (.) pd_ref`` (n, nb) with ``alpha ~ U[lo, hi]`` per instance and
    ``eta ~ U[1 - noise, 1 + noise]`` per bus (PGLearn's scheme); buses without load stay at 0."""
    lo, hi = map(float, load_scale)
    if not (0 <= lo <= hi) or not np.isfinite(hi):
        raise UsageError(f"load scale must satisfy 0 <= LO <= HI, got {lo},{hi}")
    if not 0 <= load_noise < 1:
        raise UsageError(f"load noise must be in [0, 1), got {load_noise}")
    alpha = rng.uniform(lo, hi, size=(n, 1))
    eta = rng.uniform(1.0 - load_noise, 1.0 + load_noise, size=(n, s.n_bus))
    return alpha * eta * s.pd_ref[None, :]


def structure_from_case(case, penalty: float = DEFAULT_PENALTY) -> DCOPFStructure:
    """The family's structure for a parsed :class:`bilevelbench.families.dcopf.power.PowerCase`."""
    return DCOPFStructure(
        gen_bus=np.asarray(case.gen_bus, dtype=np.int64), pmin=np.asarray(case.pmin, float),
        pmax=np.asarray(case.pmax, float), cost=np.asarray(case.cost, float),
        branch_from=np.asarray(case.branch_from, dtype=np.int64), branch_to=np.asarray(case.branch_to, dtype=np.int64),
        b=1.0 / (np.asarray(case.x, float) * np.asarray(case.tap, float)), shift=np.asarray(case.shift, float),
        rate=np.asarray(case.rate_a, float), gs=np.asarray(case.gs, float), pd_ref=np.asarray(case.pd, float),
        penalty=float(penalty), base_mva=float(case.base_mva), ref=int(case.ref),
        bus_ids=np.asarray(case.bus_ids, dtype=np.int64), case=case.name)


def structure_from_arrays(arrays: dict[str, np.ndarray], case: str = "") -> DCOPFStructure:
    """Rebuild a structure from the arrays of :meth:`DCOPFStructure.arrays` (as read from ``/structure``)."""
    values = {key: np.asarray(arrays[key]) for key in STRUCTURE_KEYS}
    for key in ("penalty", "base_mva"):
        values[key] = float(values[key].reshape(()))
    values["ref"] = int(values["ref"].reshape(()))
    for key in ("gen_bus", "branch_from", "branch_to", "bus_ids"):
        values[key] = values[key].astype(np.int64)
    return DCOPFStructure(**values, case=case)


def _batch(a: np.ndarray, width: int, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != width:
        raise UsageError(f"{name} must have shape (B, {width}) or ({width},), got {np.shape(a)}")
    return a
