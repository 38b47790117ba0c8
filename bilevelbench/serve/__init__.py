"""The scoring service: ``bilevelbench serve``.

Teams upload predictions files for a data set whose test labels only the service holds; a bounded pool of
scorer processes scores them with the evaluator's own code (:func:`bilevelbench.evaluate.evaluator.score_file`)
and the leaderboard shows the score on a fixed public subset at once and the full hidden score after a reveal
date. The modules each do one job:

- :mod:`.config`: the service's settings;
- :mod:`.tokens`: team tokens (only their hashes are stored);
- :mod:`.database`: teams and submissions in any SQLAlchemy database (SQLite, PostgreSQL);
- :mod:`.catalog`: the private data sets the service scores against;
- :mod:`.uploads`: the checks every upload passes before it is queued;
- :mod:`.job`: one scoring run, in its own process;
- :mod:`.workers`: the bounded pool that runs queued submissions;
- :mod:`.board`: leaderboard rows, page and JSON;
- :mod:`.app`: the HTTP API (FastAPI).

The protocol is described in ``docs/service.md``.
"""
