"""``knapsack_proxy``: an MLP scores the items, a greedy repair layer keeps every answer feasible."""
