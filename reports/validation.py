"""Validation of the synthetic output with great-expectations.

The suite is GENERATED from what is public or DP — the schema (columns, kinds,
nullability, declared bounds and categories, keys, time order) and the model bundle's DP
statistics (DP bounds of numeric columns, DP-released category labels) — never profiled
from the real data (a profiled suite would copy private minima, maxima and rare
categories into a document that travels with the release). It runs on the synthetic
output in an ephemeral context with analytics off (GX_ANALYTICS_ENABLED=false is set
before great-expectations is imported).

great-expectations has no expectation for "rows of one entity are in time order" or
"an entity's static columns never change"; those are computed per entity here into two
helper columns that the suite then expects to be all true, so every rule still appears,
and is counted, in the one validation result.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import pandas as pd

from synthkit.schema import Schema
from synthkit.table import datetime_values

logger = logging.getLogger(__name__)

ORDER_OK = "__synthkit_time_order_ok"
CONTEXT_OK = "__synthkit_context_consistent"
READABLE = "__synthkit_readable:"  # + column name: each present value reads as a date in the column's format
_TRUE_TOKENS = [True, False, "True", "False", "true", "false", "TRUE", "FALSE", "t", "f", "yes", "no", "y", "n",
                "1", "0", 1, 0, "1.0", "0.0"]


def _gx():
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    import great_expectations.expectations as gxe
    return gx, gxe


def public_statistics(schema: Schema, transformer_state: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per column: allowed categories and bounds, from the schema first (public), else the
    bundle's DP statistics; with the source of each, for the report."""
    out: dict[str, dict[str, Any]] = {}
    state = transformer_state or {}
    for col in schema.columns:
        info: dict[str, Any] = {}
        st = state.get(col.name) or {}
        if col.kind == "categorical":
            if col.categories is not None:
                info["categories"], info["categories_source"] = list(col.categories), "schema"
            elif st.get("labels") is not None:
                labels = [str(v) for v in st["labels"] if not str(v).startswith("__")]
                info["categories"], info["categories_source"] = labels, "dp"
        if col.kind in ("continuous", "integer", "datetime"):
            if col.bounds is not None:
                info["bounds"], info["bounds_source"] = list(col.bounds), "schema"
            elif st.get("bounds") is not None:
                lo, hi = st["bounds"]
                if col.kind == "datetime":
                    info["bounds"] = [str(pd.Timestamp(lo, unit="s")), str(pd.Timestamp(hi, unit="s"))]
                else:
                    info["bounds"] = [float(lo), float(hi)]
                info["bounds_source"] = "dp"
        out[col.name] = info
    return out


def _read_datetimes(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """Datetime columns written as text (a declared or DP-decided `format` such as
    '%m/%d/%Y', or 'excel' serial numbers) read as datetimes with that format, so type,
    bounds and time order are checked on dates, not on the text. Next to each such column a
    helper column says whether a present value read in its format (a value that does not
    is kept as missing in the read column and fails that helper's check)."""
    out = frame.copy()
    for col in schema.columns:
        if col.kind != "datetime" or col.name not in frame.columns:
            continue
        s = frame[col.name]
        if pd.api.types.is_datetime64_any_dtype(s):
            continue
        d = datetime_values(s, col.format)
        out[col.name] = d
        out[READABLE + col.name] = (s.isna() | d.notna()).to_numpy()
    return out


def _helper_columns(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    from reports.sequence import NULL_TOKEN
    out = frame.copy()
    ent = frame[schema.entity_key].to_numpy()
    codes, uniq = pd.factorize(ent, sort=False)
    if schema.sequence_index:
        from reports.encoding import canonical
        t = canonical(frame, [schema.column(schema.sequence_index)])[schema.sequence_index].to_numpy(dtype=float)
        same = np.r_[False, codes[1:] == codes[:-1]]
        bad = ~np.isfinite(t)
        bad[1:] |= same[1:] & (t[1:] < t[:-1])
        runs = np.r_[True, codes[1:] != codes[:-1]]
        bad_entity = (np.bincount(codes[bad], minlength=len(uniq)) > 0) | (np.bincount(codes[runs], minlength=len(uniq)) > 1)
        out[ORDER_OK] = ~bad_entity[codes]
    if schema.context_columns:
        changed = np.zeros(len(uniq), dtype=bool)
        for name in schema.context_columns:
            n = pd.Series(frame[name].fillna(NULL_TOKEN).astype(str).to_numpy()).groupby(codes).nunique()
            changed |= n.reindex(range(len(uniq)), fill_value=1).to_numpy() > 1
        out[CONTEXT_OK] = ~changed[codes]
    return out


def build_suite(schema: Schema, stats: dict[str, dict[str, Any]], frame: pd.DataFrame, *,
                max_rows_per_unit: int = 1, helper_columns: list[str] = ()) -> tuple[list[Any], list[str]]:
    """Expectations plus a plain-language description of each (same order)."""
    _, gxe = _gx()
    exps: list[Any] = []
    text: list[str] = []

    def add(exp: Any, description: str) -> None:
        exps.append(exp)
        text.append(description)

    add(gxe.ExpectTableColumnsToMatchSet(column_set=schema.names + list(helper_columns), exact_match=True),
        "the columns are exactly the schema's columns")
    for col in schema.columns:
        name = col.name
        if not col.nullable:
            add(gxe.ExpectColumnValuesToNotBeNull(column=name), f"{name}: no missing values (nullable: false)")
        s = frame[name] if name in frame.columns else pd.Series(dtype=object)
        if col.kind in ("continuous", "integer"):
            add(gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=[
                "int64", "int32", "Int64", "Int32", "float64", "float32", "Float64", "int16", "int8", "UInt64",
                "uint64", "uint32", "INTEGER", "FLOAT", "DOUBLE", "BIGINT"]), f"{name}: numeric type")
        elif col.kind == "datetime" and READABLE + name in frame.columns:
            add(gxe.ExpectColumnValuesToBeInSet(column=READABLE + name, value_set=[True]),
                f"{name}: dates written in the format {col.format or 'iso'!r}")
        elif col.kind == "datetime":
            add(gxe.ExpectColumnValuesToBeInTypeList(column=name, type_list=[
                "datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]", "DatetimeTZDtype",
                "datetime64", "TIMESTAMP", "DATE"] + [str(s.dtype)] * pd.api.types.is_datetime64_any_dtype(s)),
                f"{name}: date/time type")
        elif col.kind == "boolean":
            add(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=_TRUE_TOKENS), f"{name}: true/false values")
        info = stats.get(name, {})
        if "categories" in info:
            add(gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(info["categories"])),
                f"{name}: values among the {info['categories_source']} categories")
        if "bounds" in info and col.kind in ("continuous", "integer", "datetime"):
            lo, hi = info["bounds"]
            if col.kind == "datetime":
                lo, hi = pd.Timestamp(lo), pd.Timestamp(hi)
                tz = getattr(getattr(s, "dt", None), "tz", None) if pd.api.types.is_datetime64_any_dtype(s) else None
                if tz is not None:
                    lo, hi = lo.tz_localize("UTC").tz_convert(tz), hi.tz_localize("UTC").tz_convert(tz)
                if not pd.api.types.is_datetime64_any_dtype(s):
                    lo, hi = str(lo), str(hi)
            else:
                lo, hi = float(lo), float(hi)
            add(gxe.ExpectColumnValuesToBeBetween(column=name, min_value=lo, max_value=hi),
                f"{name}: within the {info['bounds_source']} bounds")
    unique_keys = [c.name for c in schema.columns if c.kind == "identifier" and c.name != schema.entity_key]
    if schema.entity_key and not schema.sequence_index and max_rows_per_unit == 1:
        unique_keys.append(schema.entity_key)
    for name in unique_keys:
        add(gxe.ExpectColumnValuesToBeUnique(column=name), f"{name}: unique key")
    if schema.sequence_index:
        add(gxe.ExpectColumnValuesToBeInSet(column=ORDER_OK, value_set=[True]),
            f"events of each {schema.entity_key} are contiguous and in {schema.sequence_index} order")
    if schema.entity_key and schema.context_columns:
        add(gxe.ExpectColumnValuesToBeInSet(column=CONTEXT_OK, value_set=[True]),
            f"each {schema.entity_key} has one consistent entity record (context columns constant across its events)")
    return exps, text


def validate(synthetic: pd.DataFrame, schema: Schema, *, transformer_state: dict[str, Any] | None = None,
             max_rows_per_unit: int = 1) -> dict[str, Any]:
    """Run the generated suite on the synthetic frame; a JSON-able summary."""
    gx, _ = _gx()
    import logging as _logging
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        _logging.getLogger(name).setLevel(_logging.ERROR)
    stats = public_statistics(schema, transformer_state)
    frame = _read_datetimes(synthetic, schema)
    if schema.entity_key and (schema.sequence_index or schema.context_columns) and schema.entity_key in synthetic:
        frame = _helper_columns(frame, schema)
    exps, text = build_suite(schema, stats, frame, max_rows_per_unit=max_rows_per_unit,
                             helper_columns=[c for c in frame.columns if str(c).startswith(READABLE)]
                             + [c for c in (ORDER_OK, CONTEXT_OK) if c in frame.columns])
    context = gx.get_context(mode="ephemeral")
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - progress bars are cosmetic; other GX versions may differ
        pass
    source = context.data_sources.add_pandas("synthetic")
    asset = source.add_dataframe_asset("synthetic_output")
    batch_def = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name="synthkit_generated"))
    described = {}
    for e, description in zip(exps, text):
        added = suite.add_expectation(e)
        column = getattr(e, "column", None)
        if isinstance(column, str) and column.startswith(READABLE):
            column = column[len(READABLE):]  # reported under the date column it checks
        described[str(added.id)] = (type(e).__name__, column, description)
    res = batch_def.get_batch(batch_parameters={"dataframe": frame}).validate(suite, result_format="SUMMARY")
    results = []
    for r in res.results:
        d = r.to_json_dict()
        kind, column, description = described.get(str(d["expectation_config"].get("id")),
                                                  (d["expectation_config"].get("type"), None, ""))
        result = d.get("result") or {}
        results.append({"expectation": kind, "column": column, "description": description,
                        "success": bool(d.get("success", False)),
                        "unexpected_percent": result.get("unexpected_percent"),
                        "unexpected_count": result.get("unexpected_count"),
                        "exception": bool((d.get("exception_info") or {}).get("raised_exception", False))})
    order = {desc: i for i, desc in enumerate(text)}
    results.sort(key=lambda r: order.get(r["description"], len(order)))
    n_ok = sum(r["success"] for r in results)
    return {"engine": f"great_expectations {gx.__version__}", "success": n_ok == len(results),
            "n_expectations": len(results), "n_passed": n_ok,
            "success_rate": n_ok / len(results) if results else None, "expectations": results,
            "statistics_sources": {k: {kk: vv for kk, vv in v.items() if kk.endswith("_source")} for k, v in stats.items() if v}}

