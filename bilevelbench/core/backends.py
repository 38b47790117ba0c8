"""Exact solver backends every family may use: availability and version strings (recorded in every file)."""

from __future__ import annotations

from bilevelbench.errors import UsageError

#: Gurobi's free (size-limited) license: quadratic models up to 200 variables,
#: and at most 2000 variables and 2000 constraints overall.
GUROBI_FREE_QUADRATIC_VARS = 200
GUROBI_FREE_ROWS = 2000



def gurobi_status() -> tuple[bool, str]:
    """Whether gurobipy imports and a license environment can start, with the reason if not."""
    try:
        import gurobipy as gp
    except ImportError:
        return False, "gurobipy is not installed (pip install gurobipy)"
    try:
        env = gp.Env(empty=True)
        env.setParam("OutputFlag", 0)
        env.start()
        env.dispose()
    except gp.GurobiError as exc:  # no or invalid license
        return False, f"Gurobi license unavailable: {exc}"
    return True, ""



def backend_version(name: str) -> str:
    """Version string of an exact backend (``scip``, ``gurobi`` or ``highs``), without building a model."""
    if name == "scip":
        import pyscipopt

        model = pyscipopt.Model()
        scip = f"{model.getMajorVersion()}.{model.getMinorVersion()}.{model.getTechVersion()}"
        return f"SCIP {scip} (pyscipopt {pyscipopt.__version__})"
    if name == "gurobi":
        import gurobipy as gp

        return "Gurobi {}.{}.{} (gurobipy {})".format(*gp.gurobi.version(), gp.__version__)
    if name == "highs":
        from importlib import metadata

        return f"HiGHS (highspy {metadata.version('highspy')})"
    raise UsageError(f"backend must be one of scip, gurobi, highs, got {name!r}")


def highs_version() -> str:
    """``HiGHS <version>`` of the HiGHS library in use (recorded with labels that HiGHS solved or checked)."""
    from bilevelbench.qp import _highs

    try:
        return f"HiGHS {_highs().version()}"
    except Exception:  # noqa: BLE001 - version strings are informative only
        return "HiGHS"
