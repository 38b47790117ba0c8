"""Bad input to the interdiction families' generators gets one clear line and exit status 2 (issue 19)."""

from __future__ import annotations

import pytest

from bilevelbench.cli import main


@pytest.mark.parametrize(("args", "message"), [
    (["spi-grid", "--size", "12", "--budget", "200"], "--budget must be between 0 and 142"),
    (["spi-grid", "--size", "1"], "--size must be at least 2"),
    (["tsp-interdiction", "--size", "120"], "between 4 and 100 (cities are drawn from a set of 100)"),
    (["tsp-interdiction", "--size", "10", "--budget", "8"], "between 0 and k - 3 = 7 with 10 cities"),
    (["tsp-interdiction", "--size", "20"], "above 16 is refused"),
])
def test_bad_generator_arguments_get_one_line(args, message, tmp_path, capsys):
    assert main(["-q", "generate", *args, "--n-test", "2", "--out", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "x.h5").exists()
