"""``knapsack``: the parametric multi-dimensional 0/1 knapsack (capacities vary per instance), SCIP-certified."""
