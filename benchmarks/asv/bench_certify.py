"""Label certification: time per instance per family and size, success rate, generation memory."""

from __future__ import annotations

import numpy as np

from . import common


class CertifyBQP:
    """One bqp label (KKT-MIP with SOS1 in SCIP, checks included) per size."""

    params = ["3x2", "6x4", "9x6"]
    param_names = ["size"]
    timeout = 300

    def setup(self, size):
        from bilevelbench.families.bqp.certifier import Certifier, CertifierSettings
        from bilevelbench.families.bqp.generate import BQPRequest, params_for, structure_for
        from bilevelbench.families.bqp.problem import parse_size

        m, n = parse_size(size)
        request = BQPRequest(m=m, n=n, n_train=0, n_valid=0, n_test=3, seed=1)
        s = structure_for(request)
        self.params_, _ = params_for(request, s)
        self.certifier = Certifier(s, CertifierSettings(backend="scip", time_limit=60))

    def time_certify_one(self, size):
        self.certifier.certify(self.params_["c"][0], self.params_["d"][0])


class CertifyDCOPF:
    """One dcopf label (warm HiGHS solve plus the solver-free certificate) per shipped case."""

    params = ["case14", "case57", "case118", "case300"]
    param_names = ["case"]

    def setup(self, case):
        from bilevelbench.families.dcopf.certify import DCOPFCertifierSettings, DCOPFModel
        from bilevelbench.families.dcopf.generate import load_structure
        from bilevelbench.families.dcopf.problem import sample_loads

        s, _ = load_structure(case)
        self.model = DCOPFModel(s)
        self.settings = DCOPFCertifierSettings()
        self.pd = sample_loads(s, np.random.default_rng(0), 16)
        self.k = 0

    def time_certify_one(self, case):
        from bilevelbench.families.dcopf.certify import certify_dcopf

        certify_dcopf(self.model, self.pd[self.k % 16], self.settings)
        self.k += 1


class CertifyMIQP:
    """One mimpc-tank label (SCIP to gap 1e-6, integers fixed and re-solved by HiGHS)."""

    timeout = 300

    def setup(self):
        from bilevelbench.families.mimpc import problem as mimpc
        from bilevelbench.families.mimpc.certify import MIQPCertifierSettings

        self.s = mimpc.structure_for("mimpc-tank")
        self.theta = mimpc.sample_theta("mimpc-tank", np.random.default_rng(3), 4)
        self.settings = MIQPCertifierSettings(backend="scip", time_limit=60)

    def time_certify_tank(self):
        from bilevelbench.families.mimpc.certify import certify_miqp

        certify_miqp(self.s, self.theta[0], self.settings, "scip")


class CertificationSuccess:
    """Fraction of draws whose label is certified optimal (a drop means a solver or check regressed)."""

    timeout = 600

    def setup_cache(self):
        sets = common.fixed_sets()
        return {"bqp": sets["bqp"], "dcopf": sets["dcopf118"]}

    def _rate(self, path):
        from bilevelbench.data.instance_set import InstanceSet

        status = InstanceSet.open(path).labels["status"].astype(str)
        return float(np.mean(status == "certified_optimal"))

    def track_bqp_3x2_certified_rate(self, paths):
        return self._rate(paths["bqp"])

    track_bqp_3x2_certified_rate.unit = "fraction"

    def track_dcopf_case118_certified_rate(self, paths):
        return self._rate(paths["dcopf"])

    track_dcopf_case118_certified_rate.unit = "fraction"


class GenerationMemory:
    """Peak memory of generating a small set (the process's maximum resident set)."""

    timeout = 600

    def peakmem_generate_dcopf_case300(self):
        common.dcopf_set(common.tmpdir(), "case300", n_test=100)

    def peakmem_generate_bqp_3x2(self):
        common.bqp_set(common.tmpdir(), n_test=10, seed=4)
