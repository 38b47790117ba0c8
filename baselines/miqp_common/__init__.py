"""Shared training command, solver and metrics of the three MIQP baselines (``miqp_sl``, ``miqp_ssl``,
``miqp_hybrid``) of Le, Xie and Mangharam, "A Hybrid Learning-to-Optimize Framework for Mixed-Integer Quadratic
Programming" (L4DC 2026)."""
