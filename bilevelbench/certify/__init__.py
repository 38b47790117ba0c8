"""Exact certification of labels: bounds, KKT-MIP backends, independent checks."""

from bilevelbench.certify.certifier import Certifier, CertifierSettings
from bilevelbench.certify.checks import Tolerances, check_label
from bilevelbench.certify.label import STATUSES, Label

__all__ = ["STATUSES", "Certifier", "CertifierSettings", "Label", "Tolerances", "check_label"]
