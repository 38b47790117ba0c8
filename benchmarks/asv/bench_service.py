"""The scoring service's per-upload work: the upload check (in the service's helper process) and one scorer run
(public subset and full split) on the fixed bqp set, each without the HTTP and process start-up around it.
``benchmarks/service_load.py`` measures the whole path (50 uploads from 10 teams, upload to done)."""

from __future__ import annotations

import numpy as np

from . import common


class ServiceUpload:
    """Checking and scoring one complete predictions file."""

    timeout = 300

    def setup_cache(self):
        return common.fixed_sets()["bqp"]

    def setup(self, path):
        from bilevelbench.data.instance_set import InstanceSet
        from bilevelbench.evaluate.predictions import write_predictions
        from bilevelbench.serve.catalog import public_rows
        from bilevelbench.serve.uploads import UploadRules

        ds = InstanceSet.open(path)
        y = np.asarray(ds.split("test").labels["y"], float)
        self.tmp = common.tmpdir()
        self.file = write_predictions(self.tmp / "p.h5", y, np.arange(len(y)))
        dy, dz = ds.decision_dims
        self.rules = UploadRules(dataset="bqp", split="test", y_dim=dy, z_dim=dz, n_instances=len(y), sha256=())
        self.config = {"id": "0" * 32, "team": "bench", "dataset": str(path), "predictions": str(self.file),
                       "split": "test", "public_rows": public_rows("bench", "d", len(y), 0.2).tolist()}

    def time_check_upload(self, path):
        from bilevelbench.serve.uploads import check_upload

        check_upload(str(self.file), self.rules)

    def time_score_submission(self, path):
        from bilevelbench.serve.job import score_submission

        score_submission(self.config)
