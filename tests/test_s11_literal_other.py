"""A table that holds the literal `__other__` (a synthetic output fitted again, as helper C
found in session 11: DPHMM writes it in a folded column) fits and samples: the value folds
into the one `__other__` label instead of becoming a second label of the same name, which
failed every later lookup with an internal error.

Negative control: on df40585 the fit raises a ValueError in CategoricalTransform.codes
(get_loc of the duplicated label returns a mask) — the test fails there.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from synthkit import DPTVAE, PrivacyBudget
from synthkit.transforms import OTHER


def _frame(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    kind = rng.choice(["visit", "call", OTHER], size=n, p=[0.5, 0.3, 0.2])
    return pd.DataFrame({"kind": kind, "amount": np.round(rng.gamma(2.0, 30.0, size=n), 2)})


def test_a_literal_other_value_folds_into_the_other_label() -> None:
    frame = _frame(3000)
    model = DPTVAE(epochs=1, batch_size=500, seed=0, device="cpu").fit(
        frame, budget=PrivacyBudget(epsilon=3.0, delta=1e-6))
    labels = model.transformer_.transforms["kind"].labels_
    assert labels.count(OTHER) == 1, labels
    out = model.sample(2000, seed=1)
    shares = out["kind"].value_counts(normalize=True)
    assert set(shares.index) <= {"visit", "call", OTHER}
    assert 0.08 < shares.get(OTHER, 0.0) < 0.35, shares.to_dict()  # 20% in the data, kept as the folded share
