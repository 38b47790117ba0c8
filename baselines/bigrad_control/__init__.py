"""BiGrad, the two-step layer and supervised learning on ``adv-control`` (issue 19)."""
