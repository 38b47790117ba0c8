"""Independent re-checks of control co-design labels (``bilevelbench verify``).

These families have best-known labels (a documented search), never certificates, and no exact method exists to
re-solve them: ``verify --oracle`` says so and fails (:meth:`Family.oracle_checker`'s default).
"""

from __future__ import annotations

import numpy as np

from bilevelbench.core.family import LabelCheck


def label_checker(ds) -> LabelCheck:
    """``best_known`` labels: the design is finite and inside its box, and the follower's response recomputed for
    the instance alone gives the stored objective, cost and violation (to ``1e-9 (1 + |f|)``); for ``ccd-hvac``
    the follower's QP is also re-solved by HiGHS, whose optimal value must match the response's
    (``1e-7 (1 + |value|)``). No label may be ``certified_optimal``; other statuses must store no design."""
    from bilevelbench.families.ccd.generate import RECOMPUTE_TOL, design_violation, evaluate
    from bilevelbench.families.ccd.hvac import FAMILY as HVAC

    s, family = ds.structure, ds.family
    params, labels = ds.params, ds.labels

    def check(pos: int, status: str) -> list[str]:
        one = {k: v[pos:pos + 1] for k, v in params.items()}
        design = labels["design"][pos:pos + 1]
        problems: list[str] = []
        if not all(np.all(np.isfinite(v)) for v in one.values()):
            problems.append("parameters contain NaN or inf")
        elif status == "certified_optimal":
            problems.append("a control co-design label claims certified_optimal; only best_known labels exist")
        elif status == "best_known":
            if not np.all(np.isfinite(design)):
                return ["best_known label without a finite design"]
            box = float(design_violation(family, s, design)[0])
            if box > 0:
                problems.append(f"design outside its box by {box:.2e}")
            got = evaluate(family, s, design, one)
            for key in ("objective", "cost", "violation"):
                stored = float(labels[key][pos])
                if abs(float(got[key][0]) - stored) > RECOMPUTE_TOL * (1 + abs(stored)):
                    problems.append(f"recomputed {key} {float(got[key][0]):.12g} differs from the stored {stored:.12g}")
            if family == HVAC:
                from bilevelbench.families.ccd.hvac import highs_follower_value

                ref = highs_follower_value(s, design[0], {k: v[0] for k, v in one.items()})
                value = float(got["follower_objective"][0])
                if abs(ref - value) > 1e-7 * (1 + abs(ref)):
                    problems.append(f"HiGHS solves the follower's QP to {ref:.10g}, the response has {value:.10g}")
        elif np.any(np.isfinite(design)):
            problems.append(f"status {status!r} but a design is stored (unchecked points must not be published)")
        return problems

    return check
