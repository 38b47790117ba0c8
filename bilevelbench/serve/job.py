"""One scoring run, in its own process: ``python -m bilevelbench.serve.job CONFIG.json``.

The service writes the config (data set, uploaded file, split, public subset) and reads back ``OUT.json``:
``{"public": record, "full": record}`` (results records, ``docs/results.md``), or ``{"error": reason}``. The
scores come from the evaluator's own code (:func:`bilevelbench.evaluate.evaluator.score_file`), exactly as
``bilevelbench score`` computes them. The process ends by itself if the service is killed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from bilevelbench.lifeline import exit_with_parent

PARENT_ENV = "BILEVELBENCH_SERVICE_PID"


def score_submission(config: dict) -> dict:
    """Score one upload; ``{"public": record, "full": record}``."""
    from bilevelbench.evaluate.evaluator import score_file, score_record
    from bilevelbench.evaluate.scoring import restrict_score

    scored = score_file(config["dataset"], config["predictions"], config["split"],
                        accepted_sha256=tuple(config.get("accepted_sha256", ())))
    rows = np.asarray(config["public_rows"], dtype=np.int64)
    # the leaderboard's solver column shows the team with the solver's own name
    name = str(scored.predictions.attrs.get("solver_name", "unnamed-solver"))
    solver = {"name": f"{config['team']}: {name}", "spec": "a predictions file submitted to the service",
              "description": f"team {config['team']}"}
    command = f"bilevelbench serve (submission {config['id']})"
    split = scored.split
    public = score_record(scored, command, restrict_score(scored.score, rows, scored.labels),
                          f"{split} (public {rows.size} of {scored.score.n})", solver)
    full = score_record(scored, command, None, f"{split} (hidden, all {scored.score.n})", solver)
    return {"public": public, "full": full}


def main(argv: list[str] | None = None) -> int:
    """Entry point; exit status 0 when scored, 1 when the submission could not be scored."""
    exit_with_parent(PARENT_ENV)
    argv = sys.argv[1:] if argv is None else argv
    config = json.loads(Path(argv[0]).read_text())
    out = Path(config["out"])
    from bilevelbench.errors import BilevelBenchError

    try:
        result, status = score_submission(config), 0
    except BilevelBenchError as exc:           # said to the submitter: no server path in it
        reason = str(exc).replace(repr(str(config["predictions"])), "the uploaded file")
        reason = reason.replace(repr(str(config["dataset"])), "the data set").replace(str(config["dataset"]),
                                                                                       "the data set")
        result, status = {"error": reason}, 1
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, allow_nan=False))
    tmp.replace(out)
    return status


if __name__ == "__main__":
    sys.exit(main())
