"""DC-OPF baseline ``dcopf_proxy``: the end-to-end feasible proxy of Chen, Tanneau and Van Hentenryck (MLP, bound clamp, hypersimplex projection, self-supervised)."""
