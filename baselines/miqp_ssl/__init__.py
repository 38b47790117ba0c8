"""MIQP baseline ``ssl`` (Le, Xie and Mangharam, L4DC 2026): self-supervised: objective + constraint penalty through the relaxed QP layer."""
