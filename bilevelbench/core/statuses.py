"""Label statuses, shared by every family."""

#: ``certified_optimal``: exact solve to the gap tolerance and every check passed.
#: ``best_known``: a feasible point without an optimality proof (``reason`` says why).
#: ``infeasible``: the instance has no feasible point (proven).
#: ``failed``: no trustworthy point; ``reason`` says why.
#: ``unlabeled``: not attempted (e.g. the train split with ``--no-label-train``).
#: ``hidden``: the label exists but this file is a public release without it (only a scoring service holds it).
STATUSES = ("certified_optimal", "best_known", "infeasible", "failed", "unlabeled", "hidden")
#: Statuses whose label stores a (checked) solution.
SOLUTION_STATUSES = ("certified_optimal", "best_known")
