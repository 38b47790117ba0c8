"""The bqp follower's response ``z(y)`` as a differentiable batched layer (the generic batched QP layer of
:mod:`bilevelbench.torch.qp_layer` with the structure's lower-level data)."""

from __future__ import annotations

import torch

from bilevelbench.torch.qp_layer import BatchedQP, IPMSettings


class FollowerLayer(torch.nn.Module):
    """The follower's response ``z(y)`` of a BQP structure as a differentiable batched layer (warm-started
    from the previous call's active sets by default: see :class:`BatchedQP`)."""

    def __init__(self, structure, settings: IPMSettings | None = None, warm_start: bool = True) -> None:
        super().__init__()
        self.qp = BatchedQP(torch.tensor(structure.H), torch.tensor(structure.F), settings, warm_start)
        self.register_buffer("e", torch.tensor(structure.e, dtype=torch.float64))
        self.register_buffer("h", torch.tensor(structure.h, dtype=torch.float64))
        self.register_buffer("G", torch.tensor(structure.G, dtype=torch.float64))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``z(y)`` for a batch ``y`` (B, m)."""
        return self.qp(self.e.expand(y.shape[0], -1), self.h + y.to(torch.float64) @ self.G.T)
