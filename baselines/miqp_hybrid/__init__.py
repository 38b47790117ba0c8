"""MIQP baseline ``hybrid`` (Le, Xie and Mangharam, L4DC 2026): hybrid: objective + penalty + supervised loss."""
