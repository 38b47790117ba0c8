"""``adv-control``: finite-horizon control against a bounded adversary (BiGrad, Table 1)."""
