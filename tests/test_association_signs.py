"""`fidelity.association_signs`: brackets and a negative control (STYLE.md tests kind 4).

The frame has known structure: `a` drives `b` (+), `c` (−), a three-level `band` cut from
`a`, and a boolean `flag` from `b`; `u` and `noise_cat` are independent of everything,
and `rare` has a level of 2% that is perfectly tied to `a` (below the 5% share rule, so
it must not count). The expected set of strong associations is computed here by a
separate reference (pandas Spearman/Pearson on explicitly built indicators), not by the
code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports import fidelity as fid
from reports.encoding import canonical, evaluated_columns
from synthkit.schema import Schema

N = 3000
SCHEMA = Schema.from_dict({"columns": {
    "a": "continuous", "b": "continuous", "c": "integer", "u": "continuous",
    "band": "categorical", "flag": "boolean", "noise_cat": "categorical", "rare": "categorical"}})
COLUMNS = evaluated_columns(SCHEMA)


def structured(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = a + 0.7 * rng.normal(size=n)
    c = np.round(-5 * a + 5 * rng.normal(size=n))
    band = np.array(["low", "mid", "high"])[np.digitize(a, [-0.5, 0.5])]
    rare = np.where(a > np.quantile(a, 0.98), "r1", "r0")
    return pd.DataFrame({"a": a, "b": b, "c": c, "u": rng.normal(size=n), "band": band, "flag": b > 0.3,
                         "noise_cat": rng.choice(["p", "q", "s"], size=n), "rare": rare})


def shuffle_columns(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})


def reference_strong(frame: pd.DataFrame) -> set[tuple[str, str]]:
    """Strong associations by an independent route: Spearman between numbers, Pearson
    with 0/1 indicators (levels of share 5%–95%; one indicator for a two-level column)."""
    feats: dict[str, pd.Series] = {}
    owner: dict[str, str] = {}
    for col in COLUMNS:
        s = frame[col.name]
        if col.kind in ("continuous", "integer"):
            feats[col.name] = s.astype(float).rank()
            owner[col.name] = col.name
            continue
        s = s.astype(str)
        shares = s.value_counts(normalize=True)
        levels = sorted(lv for lv, p in shares.items() if 0.05 <= p <= 0.95)
        if len(shares) == 2:
            levels = levels[-1:]
        for lv in levels:
            feats[f"{col.name}={lv}"] = (s == lv).astype(float)
            owner[f"{col.name}={lv}"] = col.name
    corr = pd.DataFrame(feats).corr()
    return {(f, g) for f in corr.index for g in corr.columns
            if f < g and owner[f] != owner[g] and abs(corr.loc[f, g]) >= fid.STRONG_ASSOCIATION}


def signs(real: pd.DataFrame, synthetic: pd.DataFrame) -> fid.AssociationSigns:
    return fid.association_signs(canonical(real, COLUMNS), canonical(synthetic, COLUMNS), COLUMNS,
                                 rng=np.random.default_rng(0))


REAL = structured(N, 1)
STRONG = reference_strong(REAL)


def test_the_frame_has_the_structure_the_brackets_rely_on():
    involved = {f.split("=")[0] for pair in STRONG for f in pair}
    assert {"a", "b", "c", "band", "flag"} <= involved
    assert not involved & {"u", "noise_cat", "rare"}  # `rare`'s 2% level is left out by the share rule
    assert len(STRONG) >= 12


def test_exact_copy_keeps_every_sign_and_counts_the_reference_associations():
    res = signs(REAL, REAL.copy())
    assert res.n_strong == len(STRONG)
    assert res.kept_share == 1.0 and res.n_flipped == 0 and res.n_vanished == 0 and res.worst == []
    # numbers: one feature each; band: 3 levels; flag: one indicator; noise_cat: 3; rare: none
    assert res.n_features == 4 + 3 + 1 + 3 + 0


def test_independent_draws_keep_every_sign():
    # the weakest reference association is |r| >= 0.2 while r's sampling error at n = 3000 is
    # about 1/sqrt(3000) = 0.018, so an association falls to 0.05 only at > 8 standard errors
    res = signs(REAL, structured(N, 2))
    assert res.kept_share == 1.0 and res.n_flipped == 0


def test_independent_column_shuffles_keep_almost_none():
    # with every column permuted, each synthetic r ~ N(0, 1/sqrt(n)); it is "kept" only when
    # it has the real sign and exceeds 0.05 = 2.7 standard errors: probability 0.0035 per
    # association, so more than 2 of ~20 kept has probability far below 1e-3
    res = signs(REAL, shuffle_columns(REAL, 3))
    assert res.n_kept <= 2
    assert res.kept_share <= 2 / res.n_strong
    assert res.n_vanished >= res.n_strong - 4


def test_inverting_one_indicator_flips_exactly_its_associations():
    inverted = REAL.copy()
    inverted["flag"] = ~inverted["flag"]
    expected = {pair for pair in STRONG if any(f.startswith("flag") for f in pair)}
    assert expected  # flag is tied to a, b, c and band
    res = signs(REAL, inverted)
    assert res.n_flipped == len(expected)
    assert res.n_kept == len(STRONG) - len(expected) and res.n_vanished == 0
    assert res.kept_share == pytest.approx(1 - len(expected) / len(STRONG))
    assert res.worst and all("flag" in w["columns"] and w["status"] == "flipped" for w in res.worst)
    for w in res.worst:  # an exact copy with the sign reversed: r_syn = -r_real
        assert w["r_synthetic"] == pytest.approx(-w["r_real"], abs=0.011)


def test_no_strong_association_is_not_computable():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=500), "y": rng.normal(size=500)})
    cols = evaluated_columns(Schema.from_dict({"columns": {"x": "continuous", "y": "continuous"}}))
    res = fid.association_signs(canonical(frame, cols), canonical(frame, cols), cols, rng=np.random.default_rng(0))
    assert res.kept_share is None and res.n_strong == 0


def test_a_constant_synthetic_column_keeps_nothing_of_its_associations():
    flat = REAL.copy()
    flat["b"] = 1.0
    res = signs(REAL, flat)
    lost = {pair for pair in STRONG if any(f == "b" for f in pair)}
    assert res.n_vanished == len(lost) and res.n_flipped == 0


def test_details_name_columns_and_rounded_correlations_never_a_category_label():
    inverted = REAL.copy()
    inverted["band"] = inverted["band"].map({"low": "high", "mid": "mid", "high": "low"})
    res = signs(REAL, inverted)
    assert res.n_flipped > 0
    text = json.dumps(res.details())
    for label in ("low", "mid", "high", "r1", "r0"):
        assert f'"{label}"' not in text
    for w in res.worst:
        assert set(w) == {"columns", "r_real", "r_synthetic", "status"}
        assert w["r_real"] == round(w["r_real"], 2)


def test_the_row_cap_subsamples_reproducibly(monkeypatch):
    monkeypatch.setattr(fid, "ASSOCIATION_MAX_ROWS", 1000)
    syn = structured(N, 2)
    a, b = signs(REAL, syn), signs(REAL, syn)
    assert a == b and a.n_strong > 0
