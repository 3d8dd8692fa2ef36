"""A 1- or 2-row CSV is refused by `synthkit fit` (issue 17, session 13, item 3).

Before, the refusal was a DP count of units under a fixed cut of 8: on a 1-row file that
count's noise (σ of tens at ε = 0.5 on a few columns) cleared 8 in a large share of fits,
which then trained and exited 0. Now the cut is also MIN_UNIT_SIGMAS (4) noise std of the
count (public: the plan's σ), and the CLI names the input.

Negative control: on 3e68075 `test_the_cut_follows_the_noise_of_the_count` fails (9 units
at σ = 8 give a batch of 2, no error) and `test_a_one_row_file_is_refused_every_time`
fails (with the fixed test noise a fit of the 1-row file trained, exited 0 and left a bundle there;
the 2-row file's refusals did not name the input)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synthkit.cli import app
from synthkit.models.dpsgd import MIN_UNIT_SIGMAS, TooFewUnitsError, choose_batch_size


def test_the_cut_follows_the_noise_of_the_count() -> None:
    with pytest.raises(TooFewUnitsError, match="does not clear 32"):
        choose_batch_size(None, 9.0, unit="row", cap=500, sigma=8.0)
    with pytest.raises(TooFewUnitsError):  # a given batch size does not skip it
        choose_batch_size(2, 30.0, unit="row", cap=500, sigma=8.0)
    assert choose_batch_size(None, 150.0, unit="row", cap=500, sigma=8.0) == 37  # a small table still fits
    assert choose_batch_size(None, 9.0, unit="row", cap=500) == 2  # no σ given: the fixed cut of 8, as before
    assert MIN_UNIT_SIGMAS == 4.0


@pytest.mark.parametrize("n_rows", [1, 2])
def test_a_one_row_file_is_refused_every_time(tmp_path: Path, n_rows: int) -> None:
    """12 fits each (each a fresh draw of the count's noise): every one exits non-zero,
    names the input file and the fix, and leaves no bundle folder."""
    data = tmp_path / "tiny.csv"
    pd.DataFrame({"age": [34, 61][:n_rows], "bmi": [22.5, 31.0][:n_rows],
                  "smoker": ["no", "yes"][:n_rows]}).to_csv(data, index=False)
    runner = CliRunner()
    codes = []
    for i in range(12):
        out = tmp_path / f"m{i}"
        result = runner.invoke(app, ["fit", str(data), "--epsilon", "0.5", "--epochs", "1", "--out", str(out)])
        codes.append(result.exit_code)
        if result.exit_code != 0:
            text = " ".join(result.output.split())
            assert "tiny.csv" in text and "too few rows" in text, text
            assert "--epsilon" in text and "--schema" in text
        assert not out.exists()
        assert not list(tmp_path.glob(f".m{i}*"))  # no hidden partial folder either
    assert all(code != 0 for code in codes), codes
