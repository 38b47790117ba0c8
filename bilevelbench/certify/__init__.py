"""Exact certification of labels: bounds, KKT-MIP backends, independent checks."""

from bilevelbench.certify.certifier import Certifier, CertifierSettings
from bilevelbench.certify.checks import Tolerances, check_label
from bilevelbench.certify.label import STATUSES, Label

__all__ = ["Certifier", "CertifierSettings", "Label", "STATUSES", "Tolerances", "check_label"]
