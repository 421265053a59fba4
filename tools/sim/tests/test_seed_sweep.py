"""seed_sweep's command line: bad options are refused before any drive starts (the drives themselves are the
closed-loop tests' Drive, tested there)."""

import pytest

from tools.sim.seed_sweep import main


@pytest.mark.parametrize("argv, words", [
    (["--scenarios", "highway,moon"], "unknown scenarios ['moon']"),
    (["--count", "0"], "--count must be >= 1"),
    (["--steer-gain", "9"], "steer_gain"),
])
def test_bad_options_exit_2_with_the_reason(argv, words, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("seed_sweep: ") and words in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing was driven
