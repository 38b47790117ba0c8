"""Power-system cases: a MATPOWER (PGLib-OPF) case parser and the small PGLib-OPF cases shipped with the package."""

from bilevelbench.families.dcopf.power.matpower import SHIPPED_CASES, PowerCase, load_case, parse_case

__all__ = ["SHIPPED_CASES", "PowerCase", "load_case", "parse_case"]
