"""The service over HTTP on SQLite and PostgreSQL: submit, poll, the owner's view, other teams, the leaderboard."""

from __future__ import annotations

import json
import math
from pathlib import Path

import requests

from bilevelbench.evaluate.evaluator import score_predictions
from tests.serve.conftest import DATASET, N_TEST, add_team, predictions


def test_submit_score_and_rank(db_url: str, tmp_path: Path, service_data: Path, start_service) -> None:
    tokens = {team: add_team(db_url, team) for team in ("alpha", "beta")}
    service = start_service(db_url, "--workers", "2")
    service.tokens = tokens
    exact = predictions(service_data, tmp_path / "exact.h5", solver_name="labels")
    noisy = predictions(service_data, tmp_path / "noisy.h5", shift=0.05, solver_name="noisy")
    first = service.submit("alpha", exact)
    second = service.submit("beta", noisy)
    assert first.status_code == 202 and second.status_code == 202, (first.text, second.text)
    a, b = first.json()["id"], second.json()["id"]
    done = service.wait_done("alpha", [a])[a]
    assert done["status"] == "done", done
    public = done["metrics"]["public"]
    assert public["n_instances"] == math.ceil(0.2 * N_TEST) and public["gap_max"] <= 1e-6
    assert done["metrics"]["hidden"] is None and done["hidden_revealed"] is False
    assert done["attempts"] == 1 and done["solver"]["name"] == "labels"
    # other teams see nothing of it; no token or a bad one gets 401
    assert requests.get(f"{service.url}/api/v1/submissions/{a}", headers=service.headers("beta"),
                        timeout=30).status_code == 404
    assert requests.get(f"{service.url}/api/v1/submissions/{a}", timeout=30).status_code == 401
    assert requests.get(f"{service.url}/api/v1/submissions/{a}", headers={"Authorization": "Bearer nope"},
                        timeout=30).status_code == 401
    noisy_view = service.wait_done("beta", [b])[b]
    # the service scores with the evaluator of `bilevelbench score`: the public subset's mean gap lies within the
    # full split's range, and equals a subset of the per-instance gaps `score` gives on the private file
    direct = score_predictions(service_data / f"{DATASET}.h5", noisy)
    gaps = [g for g in direct["per_instance"]["gap"] if g is not None]
    assert min(gaps) - 1e-12 <= noisy_view["metrics"]["public"]["gap_mean"] <= max(gaps) + 1e-12
    board = requests.get(f"{service.url}/api/v1/leaderboard", timeout=30).json()
    assert board["revealed"] is False and [g["view"] for g in board["groups"]] == ["public"]
    rows = board["groups"][0]["rows"]
    assert [(r["rank"], r["team"], r["solver"]) for r in rows] == [(1, "alpha", "labels"), (2, "beta", "noisy")]
    assert "per_instance" not in json.dumps(board)
    page = requests.get(f"{service.url}/", timeout=60)
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    assert "noisy" in page.text and "public 6 of 30" in page.text
    health = requests.get(f"{service.url}/api/v1/health", timeout=30).json()
    assert health["submissions"]["done"] == 2 and health["datasets"] == [DATASET]


def test_hidden_scores_only_after_the_reveal(tmp_path: Path, service_data: Path, start_service) -> None:
    db = f"sqlite:///{tmp_path / 'service.db'}"
    tokens = {"alpha": add_team(db, "alpha")}
    service = start_service(db, "--reveal-at", "2100-01-01")
    service.tokens = tokens
    sid = service.submit("alpha", predictions(service_data, tmp_path / "p.h5", shift=0.02)).json()["id"]
    before = service.wait_done("alpha", [sid])[sid]
    assert before["metrics"]["hidden"] is None and before["reveal_at"].startswith("2100-01-01")
    assert "hidden" not in requests.get(f"{service.url}/", timeout=60).text.split("<h2>", 1)[-1]
    service.stop()
    # the same database, restarted with a reveal date in the past: the full hidden score appears
    service = start_service(db, "--reveal-at", "2020-01-01")
    service.tokens = tokens
    after = service.status("alpha", sid)
    hidden = after["metrics"]["hidden"]
    assert after["hidden_revealed"] and hidden["n_instances"] == N_TEST
    direct = score_predictions(service_data / f"{DATASET}.h5", tmp_path / "p.h5")
    assert hidden["gap_mean"] == direct["metrics"]["gap_mean"]
    board = requests.get(f"{service.url}/api/v1/leaderboard", timeout=30).json()
    assert sorted(g["view"] for g in board["groups"]) == ["hidden", "public"]
    assert f"hidden, all {N_TEST}" in requests.get(f"{service.url}/", timeout=60).text


def test_public_release_sha_openapi_and_catalog(tmp_path: Path, service_data: Path, start_service) -> None:
    """Predictions that name the public file's sha256 (what a user holds) are accepted."""
    from bilevelbench.evaluate.provenance import file_sha256

    db = f"sqlite:///{tmp_path / 'service.db'}"
    tokens = {"alpha": add_team(db, "alpha")}
    service = start_service(db)
    service.tokens = tokens
    sha = file_sha256(service_data / f"{DATASET}.public.h5")
    response = service.submit("alpha", predictions(service_data, tmp_path / "p.h5", dataset_sha256=sha))
    assert response.status_code == 202, response.text
    sid = response.json()["id"]
    assert service.wait_done("alpha", [sid])[sid]["status"] == "done"
    schema = requests.get(f"{service.url}/openapi.json", timeout=30).json()
    assert {"/api/v1/submissions", "/api/v1/submissions/{sid}", "/api/v1/leaderboard", "/api/v1/datasets"} <= set(
        schema["paths"])
    body = schema["paths"]["/api/v1/submissions"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["dataset", "file"]
    listed = requests.get(f"{service.url}/api/v1/datasets", timeout=30).json()
    assert [(d["name"], d["n_instances"], d["public_instances"]) for d in listed] == [(DATASET, N_TEST, 6)]
