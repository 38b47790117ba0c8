"""``tsp-interdiction``: the leader removes edges to lengthen the salesman's shortest tour (BiGrad's TSP task)."""
