"""Worst-case verification of the committed piecewise-linear DC-OPF proxy (``verify-proxy``): attack speed and
quality, time to prove the worst case, and the size of the compact and KKT models.

The case57 set is small (200 train loads for the nominal point) but has the released grid, so the committed
weights (``baselines/dcopf_proxy/weights/dcopf-case57-pwl.pt``) apply.
"""

from __future__ import annotations

from . import common


def _case57(folder):
    from bilevelbench.families.dcopf.certify import DCOPFCertifierSettings
    from bilevelbench.families.dcopf.generate import DCOPFRequest, generate_dcopf

    request = DCOPFRequest(case="case57", n_train=200, n_valid=0, n_test=10, seed=1)
    return generate_dcopf(request, folder / "dcopf-case57.h5", DCOPFCertifierSettings())


class VerifyDCOPF57:
    """``verify-proxy`` on case57, loads within +-10% of the train mean."""

    timeout = 600

    def setup_cache(self):
        return str(common.cached("dcopf-case57-verify.h5", _case57))

    def setup(self, path):
        from baselines.dcopf_proxy.solver import VerifiableSolver
        from bilevelbench.data.instance_set import InstanceSet
        from bilevelbench.solvers import TaskSpec

        ds = InstanceSet.open(path)
        self.problem = ds.family_descriptor.verification_problem(ds)
        solver = VerifiableSolver()
        spec = TaskSpec("dcopf", "case57", "test", 1, ds.structure, ("pd",), ds.structure.n_gen, 0)
        solver.setup(spec, None)
        self.graph = solver.export_graph(spec)
        self.solve = lambda x: solver.solve({"pd": x}).y
        self.lower, self.upper = self.problem.domain("box", 0.1)

    def _verify(self, **kw):
        from bilevelbench.verification.attack import AttackSettings
        from bilevelbench.verification.run import VerifySettings, verify_proxy

        settings = VerifySettings(attack=AttackSettings(starts=64, steps=60), time_limit=500, **kw)
        return verify_proxy(self.problem, self.graph, self.solve, settings)

    def time_pga(self, path):
        self._verify(method="pga")

    def time_prove_worst_case(self, path):
        self._verify(method="both")

    def track_pga_fraction_of_proved_worst_case(self, path):
        block = self._verify(method="both")
        return block["pga"]["gap"] / block["upper_bound"]

    track_pga_fraction_of_proved_worst_case.unit = "fraction"

    def track_worst_case_relative_gap(self, path):
        return self._verify(method="pga")["relative_lower_bound"]

    track_worst_case_relative_gap.unit = "fraction"

    def track_binaries_compact(self, path):
        from bilevelbench.verification.encode import EncodeSettings, encode

        return encode(self.problem, self.graph, self.lower, self.upper, EncodeSettings()).stats["n_binaries"]

    track_binaries_compact.unit = "binaries"

    def track_binaries_kkt(self, path):
        from bilevelbench.verification.encode import EncodeSettings, encode

        settings = EncodeSettings(formulation="kkt", encoding="sos1")
        return encode(self.problem, self.graph, self.lower, self.upper, settings).stats["n_binaries"]

    track_binaries_kkt.unit = "binaries"
