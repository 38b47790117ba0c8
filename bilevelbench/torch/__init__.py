"""Reusable differentiable pieces (requires the ``torch`` extra): batched QP layer, coupling correction."""
