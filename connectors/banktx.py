"""Generic bank transaction CSV exports → the same accounts + transactions tables as camt.053.

Banks' CSV exports differ in their column names; this module maps them onto the
camt.053 layout (see connectors/camt053.py) so that both feed the sequence model alike.

Column mapping: each output column is taken from the first export column whose name,
lower-cased with spaces, dashes and dots turned into underscores, is in its alias list;
`columns={"amount": "Betrag (EUR)", ...}` names export columns explicitly instead.

| output column | kind | aliases |
|---|---|---|
| account_id (required) | identifier | account, account_id, account_number, account_iban, iban, konto, kontonummer, auftragskonto |
| booking_date (required) | datetime | booking_date, date, transaction_date, posting_date, booked, buchungstag, buchungsdatum |
| value_date | datetime | value_date, valuta, valutadatum, wertstellung |
| amount (required) | continuous | amount, transaction_amount, betrag, umsatz |
| credit_debit | categorical | credit_debit, cdtdbtind, debit_credit, dc, direction, soll_haben |
| currency (required, or `currency="EUR"`) | categorical | currency, ccy, waehrung, währung |
| bank_tx_code | categorical | bank_transaction_code, transaction_code, bank_tx_code, buchungstext, transaction_type |
| category | categorical | category, kategorie |
| counterparty_name | identifier | counterparty, counterparty_name, payee, payer, merchant, name, beguenstigter_zahlungspflichtiger |
| counterparty_account | identifier | counterparty_account, counterparty_iban, payee_iban, iban_gegenkonto |

Amounts: without a credit/debit column the sign decides (negative = DBIT) and `amount`
becomes its absolute value; credit/debit values CRDT/C/CR/CREDIT/H/+ and DBIT/D/DR/
DEBIT/S/- are understood (case-insensitive). Text amounts such as "1.234,56" are read
with `decimal_comma=True`. Every other export column (notably free-text descriptions and
references, which often name people) is dropped, and the dropped names are logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from connectors import files
from connectors.camt053 import CATEGORIES
from connectors.source import Source, schema_of
from connectors.uri import FILE_SUFFIXES
from synthkit.errors import SourceError

log = logging.getLogger(__name__)

ALIASES: dict[str, tuple[str, ...]] = {
    "account_id": ("account", "account_id", "account_number", "account_iban", "iban", "konto", "kontonummer",
                   "auftragskonto"),
    "booking_date": ("booking_date", "date", "transaction_date", "posting_date", "booked", "buchungstag",
                     "buchungsdatum"),
    "value_date": ("value_date", "valuta", "valutadatum", "wertstellung"),
    "amount": ("amount", "transaction_amount", "betrag", "umsatz"),
    "credit_debit": ("credit_debit", "cdtdbtind", "debit_credit", "dc", "direction", "soll_haben"),
    "currency": ("currency", "ccy", "waehrung", "währung"),
    "bank_tx_code": ("bank_transaction_code", "transaction_code", "bank_tx_code", "buchungstext", "transaction_type"),
    "category": ("category", "kategorie"),
    "counterparty_name": ("counterparty", "counterparty_name", "payee", "payer", "merchant", "name",
                          "beguenstigter_zahlungspflichtiger"),
    "counterparty_account": ("counterparty_account", "counterparty_iban", "payee_iban", "iban_gegenkonto"),
}
KINDS = {"account_id": "identifier", "booking_date": "datetime", "value_date": "datetime", "amount": "continuous",
         "credit_debit": "categorical", "currency": "categorical", "bank_tx_code": "categorical",
         "category": "categorical", "counterparty_name": "identifier", "counterparty_account": "identifier"}
REQUIRED = ("account_id", "booking_date", "amount")
FORMATS = {"booking_date": {"time_unit": "day"}, "value_date": {"time_unit": "day"}}  # bank dates are dates
_MAX_AMOUNT = 1e18
_CREDIT = {"crdt", "c", "cr", "credit", "h", "haben", "+"}
_DEBIT = {"dbit", "d", "dr", "debit", "s", "soll", "-"}


def read_source(path: Path, *, location: str, columns: Mapping[str, str] | None = None,
                currency: str | None = None, decimal_comma: bool = False, **csv_options: Any) -> Source:
    """Read a transaction CSV export and map it (see the module's table)."""
    kind = FILE_SUFFIXES.get(path.suffix.lower(), "csv")
    if kind not in ("csv", "parquet", "jsonl"):
        raise SourceError(f"{location!r}: a transaction export is a .csv, .parquet or .jsonl file")
    raw = files.read(path, kind=kind, **csv_options)  # type: ignore[arg-type]
    if raw.empty:
        raise SourceError(f"{location!r}: the export has no transactions (a header only); export the rows too")
    frame = map_transactions(raw, location=location, columns=columns, currency=currency, decimal_comma=decimal_comma)
    accounts = (frame.groupby("account_id", sort=True, as_index=False)["currency"].first())
    schemas = {
        "accounts": schema_of(accounts, {"account_id": "identifier", "currency": "categorical"}, entity_key="account_id"),
        "transactions": schema_of(frame, KINDS, entity_key="account_id", sequence_index="booking_date", formats=FORMATS,
                                  categories={"credit_debit": CATEGORIES["credit_debit"]}),
    }
    return Source(kind="banktx", location=location, tables={"accounts": accounts, "transactions": frame},
                  schemas=schemas, entity_table="accounts", events_tables=("transactions",),
                  entity_key="account_id", sequence_index="booking_date")


def map_transactions(raw: pd.DataFrame, *, location: str, columns: Mapping[str, str] | None = None,
                     currency: str | None = None, decimal_comma: bool = False) -> pd.DataFrame:
    """Rename, convert and check an export's columns into the transactions layout."""
    chosen = _choose(raw, location, columns or {})
    if "currency" not in chosen and currency is None:
        raise SourceError(f"{location!r}: no currency column (aliases: {', '.join(ALIASES['currency'])}); "
                          "name it with columns={'currency': ...} or pass currency='EUR'")
    out = pd.DataFrame({target: raw[source] for target, source in chosen.items()})
    dropped = [c for c in raw.columns if c not in chosen.values()]
    if dropped:
        log.info("%s: export columns not mapped and dropped: %s", location, dropped)
    if "currency" not in out:
        out["currency"] = currency
    problems = []
    amount = _number(out["amount"], decimal_comma=decimal_comma)
    bad = int((amount.isna() & out["amount"].notna()).sum()) + int(out["amount"].isna().sum())
    if bad:
        problems.append("amount: some rows are missing or not numbers; fill them or map another column with columns={'amount': ...}")
    elif not bool((amount.abs() < _MAX_AMOUNT).all()):  # also inf; ISO 20022 amounts have at most 18 digits
        problems.append("amount: some rows are not amounts of at most 18 digits (infinite or too long); "
                        "fix the export or map another column with columns={'amount': ...}")
    if "credit_debit" in out:
        flag = out["credit_debit"].astype("string").str.strip().str.lower()
        sign = pd.Series(np.where(flag.isin(_CREDIT), "CRDT", np.where(flag.isin(_DEBIT), "DBIT", None)),
                         index=out.index, dtype="object")
        unknown = int(sign.isna().sum())
        if unknown:
            problems.append("credit_debit: some rows hold neither a credit nor a debit marker; fix the export or leave the column unmapped to take the sign of the amount")
        out["credit_debit"] = sign
        out["amount"] = amount.abs()
    else:
        out["credit_debit"] = np.where(amount < 0, "DBIT", "CRDT")
        out["amount"] = amount.abs()
    for name in ("booking_date", "value_date"):
        if name in out:
            parsed = pd.to_datetime(out[name], errors="coerce", format="mixed", dayfirst=decimal_comma)
            if getattr(parsed.dt, "tz", None) is not None:
                parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
            bad = int((parsed.isna() & out[name].notna()).sum())
            if bad:
                problems.append(f"{name}: some rows are not dates; fix the export or map another column")
            out[name] = parsed
    missing_ids = int(out["account_id"].isna().sum())
    if missing_ids:
        problems.append("account_id: some rows have no account; fill them or map another column with columns={'account_id': ...}")
    if problems:
        raise SourceError(f"{location!r}: transaction export problems: " + "; ".join(problems))
    for name in out.columns:
        if KINDS[name] in ("categorical", "identifier"):
            out[name] = out[name].astype("object").where(out[name].notna(), None).map(
                lambda v: v if v is None else str(v))
    order = [c for c in KINDS if c in out.columns]
    return out[order].sort_values(["account_id", "booking_date"], kind="stable").reset_index(drop=True)


def _choose(raw: pd.DataFrame, location: str, explicit: Mapping[str, str]) -> dict[str, str]:
    unknown_targets = [t for t in explicit if t not in ALIASES]
    if unknown_targets:
        raise SourceError(f"{location!r}: unknown output columns {unknown_targets}; allowed: {list(ALIASES)}")
    missing = [s for s in explicit.values() if s not in raw.columns]
    if missing:
        raise SourceError(f"{location!r}: the export has no columns {missing}")
    normal = {_normal(c): c for c in raw.columns}
    chosen = dict(explicit)
    for target, aliases in ALIASES.items():
        if target in chosen:
            continue
        for alias in aliases:
            if alias in normal and normal[alias] not in chosen.values():
                chosen[target] = normal[alias]
                break
    absent = [t for t in REQUIRED if t not in chosen]
    if absent:
        raise SourceError(f"{location!r}: no column for {absent}; the export has {list(raw.columns)}; "
                          "name them with columns={...} (see connectors.banktx)")
    return chosen


def _normal(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_").replace(".", "_")


def _number(s: pd.Series, *, decimal_comma: bool) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s):
        return s.astype("float64")
    text = s.astype("string").str.strip().str.replace(r"\s", "", regex=True)
    if decimal_comma:
        text = text.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    else:
        text = text.str.replace(",", "", regex=False)
    return pd.to_numeric(text, errors="coerce").astype("float64")
