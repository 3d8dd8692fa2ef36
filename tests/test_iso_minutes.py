"""Issue 17 (F1), dates the way people write them: `2020-03-15 10:00` (ISO date, a time of
day in whole minutes) came back as `2019-12-08T23:09:16` (a T and seconds), with and
without `schema infer`'s schema, which set no format for it. The format (and with it the
precision) is a schema field decided with the kind: from the rows for the reviewed
`schema infer`, from the noisy counts (a date class of ISO times in whole minutes, by
value) for a private fit without a schema.

Negative control: run once against the code before (db0fc38, PYTHONPATH=/tmp/old_f1): the
DP format was (None, 'second'), `infer_schema` gave no format, and the output had a T and
seconds; every test below failed there.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from synthkit import DPTVAE, PrivacyBudget, infer_schema
from synthkit.noise import _fixed_for_tests

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
MINUTES = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$")


def _frame(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    start = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 300 * 24, n), unit="h")
    return pd.DataFrame({"triage": start.strftime("%Y-%m-%d %H:%M"),
                         "stamp": (start + pd.to_timedelta(rng.integers(1, 59, n), unit="s")).strftime(
                             "%Y-%m-%d %H:%M:%S"),
                         "los": rng.integers(1, 30, n)})


def test_schema_infer_keeps_whole_minutes_written_as_they_were():
    frame = _frame()
    assert infer_schema(frame).column("triage").format == "%Y-%m-%d %H:%M"
    tee = frame.assign(triage=frame["triage"].str.replace(" ", "T"))
    assert infer_schema(tee).column("triage").format == "%Y-%m-%dT%H:%M"
    # a connector that parsed the column: the value shows whole minutes (not T or space)
    parsed = frame.assign(triage=pd.to_datetime(frame["triage"]))
    assert infer_schema(parsed, formats=True).column("triage").format == "%Y-%m-%d %H:%M"
    # control: whole seconds keep ISO with seconds
    assert infer_schema(parsed.assign(triage=pd.to_datetime(frame["stamp"])),
                        formats=True).column("triage").format is None


def test_a_private_fit_decides_minutes_and_writes_them():
    model = DPTVAE(epochs=1, batch_size=200, device="cpu", embedding_dim=8, compress_dims=(16,),
                   decompress_dims=(16,))
    with _fixed_for_tests(17):
        model.fit(_frame(), budget=BUDGET, schema=None)
    col = model.schema_.column("triage")
    assert (col.kind, col.format) == ("datetime", "%Y-%m-%d %H:%M")
    assert model.schema_.column("stamp").format is None  # seconds: ISO in whole seconds, as before
    out = model.sample(300, seed=1)["triage"].dropna()
    assert len(out) and out.map(lambda v: bool(MINUTES.match(str(v)))).all()
