"""The ``dcopf`` family's problem for worst-case verification of proxies (``bilevelbench verify-proxy``).

Parameter ``x = pd`` (MW per bus). The follower is the PTDF formulation of the DC-OPF with soft thermal
limits, ``y = (pg, xi)`` over the limited branches::

    min  c1 . pg + sum c0 + M sum xi
    s.t. sum pg = sum pd + sum gs                                  (balance)
         PTDF_g pg - xi <= rate - offset + PTDF pd                 (f <= rate + xi)
         PTDF_g pg + xi >= -rate - offset + PTDF pd                (f >= -rate - xi)
         pmin <= pg <= pmax, xi >= 0

with ``f = PTDF_g pg - PTDF pd + offset`` MATPOWER's DC flows. A dispatch ``pg`` is priced as the evaluator
prices it: ``c1 . pg + sum c0 + M sum_l (max(0, f_l - rate_l) + max(0, -f_l - rate_l))``. Linear costs only
(every PGLib v23.07 case): with quadratic costs the gap would need a quadratic objective in the MILP.

The nominal loads are the mean of the train split's loads (the centre of the sampled distribution); buses
without load in the case stay at zero. The witness is re-checked with the family's label code (the angle
formulation in HiGHS, :class:`~bilevelbench.families.dcopf.certify.DCOPFModel`), a different formulation from
the PTDF program above.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from bilevelbench.errors import UsageError
from bilevelbench.verification.problem import AnswerObjective, ParametricProgram, VerificationProblem


def verification_problem(ds) -> VerificationProblem:
    """The :class:`VerificationProblem` of a dcopf instance set (its structure and train split)."""
    from bilevelbench.families.dcopf.certify import DCOPFModel
    from bilevelbench.families.dcopf.proxy import dense_ptdf
    from bilevelbench.families.dcopf.score import violations

    s = ds.structure
    if np.any(s.cost[:, 0] != 0):
        raise UsageError(f"worst-case verification of dcopf needs linear generator costs; {s.case or 'this grid'} "
                         "has quadratic ones")
    ng, nb = s.n_gen, s.n_bus
    lim = s.limited
    k = lim.size
    ptdf = dense_ptdf(s)
    offset = s.pfinj - ptdf @ (s.gs + s.pbusinj)
    P = ptdf[lim]                                   # (k, nb)
    Pg = P[:, s.gen_bus]                            # (k, ng)
    rate, off = s.rate[lim], offset[lim]
    gs_total = float(np.sum(s.gs))
    eye = sp.identity(k, format="csr")
    A = sp.vstack([sp.hstack([np.ones((1, ng)), sp.csr_matrix((1, k))]),
                   sp.hstack([sp.csr_matrix(Pg), -eye]),
                   sp.hstack([sp.csr_matrix(Pg), eye])]).tocsr()
    B = sp.vstack([np.ones((1, nb)), sp.csr_matrix(P), sp.csr_matrix(P)]).tocsr()
    row_lower = np.concatenate([[gs_total], np.full(k, -np.inf), -rate - off])
    row_upper = np.concatenate([[gs_total], rate - off, np.full(k, np.inf)])
    c = np.concatenate([s.cost[:, 1], np.full(k, s.penalty)])
    c0 = float(s.cost[:, 2].sum())
    program = ParametricProgram(
        "min", c, c0, A, row_lower, row_upper, B,
        y_lower=np.concatenate([s.pmin, np.zeros(k)]), y_upper=np.concatenate([s.pmax, np.full(k, np.inf)]),
        integer=np.zeros(ng + k, bool), names={"pg": (0, ng), "xi": (ng, ng + k)})
    # F(pd, pg) = c1 . pg + c0 + M sum (max(0, f - rate) + max(0, -f - rate)),  f = Pg pg - P pd + off
    G = np.vstack([Pg, -Pg])
    H = np.vstack([-P, P])
    h = np.concatenate([off - rate, -off - rate])
    answer = AnswerObjective(s.cost[:, 1], c0, G, H, h, np.full(2 * k, s.penalty))
    train = ds.split("train") if "train" in ds.split_names else None
    train_pd = np.asarray(train.params["pd"], float) if train is not None and len(train) else np.zeros((0, nb))
    nominal = train_pd.mean(0) if train_pd.size else np.asarray(s.pd_ref, float)
    model = DCOPFModel(s)

    def answer_value(pd: np.ndarray, pg: np.ndarray) -> np.ndarray:
        return s.objective(np.atleast_2d(pg), np.atleast_2d(pd))

    def answer_feasible(pd: np.ndarray, pg: np.ndarray) -> np.ndarray:
        v = violations(s, np.atleast_2d(pg), np.atleast_2d(pd))          # the evaluator's own test
        return (v["balance_violated"] == 0) & (v["generator_violated"] == 0)

    def exact_optimum(pd: np.ndarray) -> np.ndarray:
        out = []
        for row in np.atleast_2d(pd):
            model.reset()
            res = model.solve(row)
            out.append(res["objective"] if res.get("optimal") else np.nan)
        return np.asarray(out, float)

    return VerificationProblem(
        param="pd", decision="pg", program=program, answer=answer, decision_columns=np.arange(ng),
        nominal=nominal, train_params=train_pd, units="$/h", answer_value=answer_value,
        exact_optimum=exact_optimum, answer_feasible=answer_feasible, fixed=(np.asarray(s.pd_ref) == 0) & (np.abs(nominal) == 0),
        notes=[f"{s.case}: {nb} buses, {ng} generators, {k} limited branches; thermal penalty {s.penalty:g} $/MW",
               "nominal loads: the mean of the train split's loads"])
