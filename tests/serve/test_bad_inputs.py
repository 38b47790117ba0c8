"""Every kind of bad input in ``bad_inputs.CASES`` gets its documented answer with one clear reason, and the
service keeps nothing it refused."""

from __future__ import annotations

import re
from pathlib import Path

from tests.serve import bad_inputs
from tests.serve.conftest import add_team


def test_every_bad_input_gets_its_answer(tmp_path: Path, service_data: Path, start_service) -> None:
    db = f"sqlite:///{tmp_path / 'service.db'}"
    tokens = {team: add_team(db, team) for team in bad_inputs.teams()}
    service = start_service(db, *bad_inputs.service_args())
    service.tokens = tokens
    wrong = []
    for k, case in enumerate(bad_inputs.CASES):
        work = tmp_path / f"case-{k}"
        work.mkdir()
        response = case.send(service, service_data, work)
        try:
            body = response.json()
        except ValueError:
            body = f"(not JSON) {response.text[:200]!r}"
        reason = body.get("detail") if isinstance(body, dict) else None
        if response.status_code != case.status or case.reason not in str(reason or ""):
            wrong.append(f"{case.kind}: expected {case.status} with {case.reason!r}; received "
                         f"{response.status_code} {body}")
        if response.status_code >= 400:
            if not (isinstance(reason, str) and reason and "\n" not in reason):
                wrong.append(f"{case.kind}: expected one line of reason; received {body}")
            elif str(tmp_path) in reason:
                wrong.append(f"{case.kind}: the reason shows a server path: {reason}")
    assert not wrong, "\n".join(wrong)
    assert len(bad_inputs.CASES) >= 15
    uploads = sorted(p.name for p in (tmp_path / "state" / "uploads").iterdir())
    # only accepted uploads are kept, each under its submission id; refused ones leave nothing behind
    assert uploads and all(re.fullmatch(r"[0-9a-f]{32}\.h5", name) for name in uploads), uploads
    accepted = 2 + bad_inputs.QUOTA + 1                 # the two accepted rows, greedy's quota, beta's one
    assert len(uploads) == accepted, uploads
    assert not Path("/tmp/owned.h5").exists()
