"""ISO 20022 camt.053 (bank-to-customer statement) → accounts (entity) and transactions (events).

Input: a folder (or one file) of camt.053 XML documents, versions camt.053.001.02 to .13
(the namespace `urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN` tells the version; the
few paths that moved between versions — entry status, party names, the BIC element —
are read in both forms). XML is parsed with `defusedxml` and DTDs are refused: bank
files come from outside, and entity-expansion or external-entity tricks must not run.

Mapping (`Stmt` = statement, `Ntry` = entry):
- accounts (one row per account, the privacy unit): `account_id` (IBAN, else Othr/Id;
  kind identifier, never learned), `currency` (Acct/Ccy), `account_type` (Acct/Tp/Cd),
  `servicer_bic` (Acct/Svcr/FinInstnId/BIC or BICFI), `opening_balance` (signed OPBD, or
  PRCD, balance of the account's earliest statement).
- transactions (one row per entry): `account_id`, `booking_date` (BookgDt, else ValDt;
  the sequence index), `value_date`, `amount` (Amt, positive as in the standard),
  `credit_debit` (CRDT/DBIT), `currency` (Amt/@Ccy), `status` (BOOK/PDNG/INFO/FUTR),
  `reversal` (RvslInd), `bank_tx_domain`/`bank_tx_family`/`bank_tx_subfamily` (the ISO
  bank transaction code) and `bank_tx_proprietary` (BkTxCd/Prtry/Cd), and identifiers that
  are kept but never learned: `counterparty_name` and `counterparty_account` (the debtor
  of a credit, the creditor of a debit, from the first TxDtls). Remittance information
  (free text), references and owner names are never read.
A statement repeated in several files (same account and Stmt/Id) is read once.

Errors name the file, the statement and entry numbers and the element, with counts,
never a value; a malformed XML file is reported with its line and column.
"""

from __future__ import annotations

import logging
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Literal
from xml.etree.ElementTree import Element, ParseError

import pandas as pd

from connectors.source import Source, schema_of
from synthkit.errors import SourceError

log = logging.getLogger(__name__)

ENTITY_KEY = "account_id"
TIME = "booking_date"
_NAMESPACE = re.compile(r"^\{urn:iso:std:iso:20022:tech:xsd:camt\.053\.001\.(\d{2})\}Document$")
_VERSIONS = range(2, 14)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_MAX_PROBLEMS = 8

CREDIT_DEBIT = ("CRDT", "DBIT")
ENTRY_STATUS = ("BOOK", "PDNG", "INFO", "FUTR")
ACCOUNT_KINDS = {"account_id": "identifier", "currency": "categorical", "account_type": "categorical",
                 "servicer_bic": "categorical", "opening_balance": "continuous"}
TRANSACTION_KINDS = {"account_id": "identifier", "booking_date": "datetime", "value_date": "datetime",
                     "amount": "continuous", "credit_debit": "categorical", "currency": "categorical",
                     "status": "categorical", "reversal": "boolean", "bank_tx_domain": "categorical",
                     "bank_tx_family": "categorical", "bank_tx_subfamily": "categorical",
                     "bank_tx_proprietary": "categorical", "counterparty_name": "identifier",
                     "counterparty_account": "identifier"}
CATEGORIES = {"credit_debit": CREDIT_DEBIT, "status": ENTRY_STATUS}
FORMATS = {"booking_date": {"time_unit": "day"}, "value_date": {"time_unit": "day"}}  # read as calendar dates


def read_source(path: Path, *, location: str) -> Source:
    """Read camt.053 statements into accounts + transactions."""
    files = _files(path, location)
    accounts: dict[str, dict[str, Any]] = {}
    first_statement: dict[str, str] = {}
    transactions: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for file in files:
        root, q = _parse(file, location)
        for s_no, stmt in enumerate(root.iterfind(q("BkToCstmrStmt/Stmt")), start=1):
            where = f"{file.name} statement {s_no}"
            account_id = _text(stmt, q, "Acct/Id/IBAN") or _text(stmt, q, "Acct/Id/Othr/Id")
            stmt_id = _text(stmt, q, "Id")
            if not account_id:
                problems.append(f"{where}: Acct/Id (IBAN or Othr/Id) is missing")
                continue
            if stmt_id is not None:
                if (account_id, stmt_id) in seen:
                    duplicates += 1
                    continue
                seen.add((account_id, stmt_id))
            created = _text(stmt, q, "CreDtTm") or ""
            opening = _opening_balance(stmt, q, where, problems)
            if account_id not in accounts or created < first_statement[account_id]:
                previous = accounts.get(account_id, {})
                accounts[account_id] = {
                    "account_id": account_id,
                    "currency": _text(stmt, q, "Acct/Ccy") or previous.get("currency"),
                    "account_type": _text(stmt, q, "Acct/Tp/Cd") or previous.get("account_type"),
                    "servicer_bic": (_text(stmt, q, "Acct/Svcr/FinInstnId/BICFI")
                                     or _text(stmt, q, "Acct/Svcr/FinInstnId/BIC") or previous.get("servicer_bic")),
                    "opening_balance": opening,
                }
                first_statement[account_id] = created
            for e_no, entry in enumerate(stmt.iterfind(q("Ntry")), start=1):
                row = _entry(entry, q, f"{where} entry {e_no}", problems)
                if row is not None:
                    row["account_id"] = account_id
                    transactions.append(row)
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS])
        more = f"; and {len(problems) - _MAX_PROBLEMS} more" if len(problems) > _MAX_PROBLEMS else ""
        raise SourceError(f"{location!r}: {len(problems)} problems in camt.053 statements: {shown}{more}")
    if duplicates:
        log.warning("%s: %d statements appear in more than one file; each is read once", location, duplicates)
    if not accounts:
        raise SourceError(f"{location!r}: no statements (BkToCstmrStmt/Stmt) found in {len(files)} files")
    if not transactions:
        raise SourceError(f"{location!r}: the statements hold no entries (Stmt/Ntry), so there are no "
                          "transactions to learn; export the statements with their entries")
    tables = {"accounts": _frame(list(accounts.values()), ACCOUNT_KINDS),
              "transactions": _frame(transactions, TRANSACTION_KINDS)}
    schemas = {
        "accounts": schema_of(tables["accounts"], ACCOUNT_KINDS, entity_key=ENTITY_KEY),
        "transactions": schema_of(tables["transactions"], TRANSACTION_KINDS, entity_key=ENTITY_KEY, formats=FORMATS,
                                  sequence_index=TIME, categories=CATEGORIES),
    }
    log.info("%s: read %d accounts and %d transactions", location, len(accounts), len(transactions))
    return Source(kind="camt053", location=location, tables=tables, schemas=schemas, entity_table="accounts",
                  events_tables=("transactions",), entity_key=ENTITY_KEY, sequence_index=TIME)


# ------------------------------------------------------------------ parsing
def _files(path: Path, location: str) -> list[Path]:
    if not path.exists():
        raise SourceError(f"{location!r}: no such file or folder")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".xml")
    if not files:
        raise SourceError(f"{location!r}: no .xml files")
    return files


def _parse(file: Path, location: str) -> tuple[Element, Callable[[str], str]]:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import parse
    try:
        root = parse(file, forbid_dtd=True).getroot()
    except ParseError as err:
        line, column = getattr(err, "position", (0, 0))
        raise SourceError(f"{location!r}: {file.name} is not well-formed XML (line {line}, column {column})") from None
    except DefusedXmlException as err:
        raise SourceError(f"{location!r}: {file.name} uses a DTD or XML entities ({type(err).__name__}), "
                          "which camt.053 never needs; refused for safety") from None
    except UnicodeDecodeError:
        raise SourceError(f"{location!r}: {file.name} does not match its declared encoding") from None
    _check_depth(root, file, location)
    match = _NAMESPACE.match(root.tag)
    if match is None or int(match.group(1)) not in _VERSIONS:
        raise SourceError(f"{location!r}: {file.name} is not a camt.053 statement (expected a Document in namespace "
                          "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02 to .13)")
    ns = root.tag[1:].split("}", 1)[0]

    def q(path: str) -> str:
        return "/".join(f"{{{ns}}}{part}" for part in path.split("/"))
    return root, q


# camt.053 nests about a dozen elements (Document > BkToCstmrStmt > Stmt > Ntry > NtryDtls >
# TxDtls > RltdPties > Cdtr > Pty > Nm); far more is no statement, and deep trees are slow
# to search and to free.
MAX_DEPTH = 64


def _check_depth(root: Element, file: Path, location: str) -> None:
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SourceError(f"{location!r}: {file.name} nests elements more than {MAX_DEPTH} levels deep, "
                              "which no camt.053 statement does; check the file")
        stack.extend((child, depth + 1) for child in element)


def _text(element: Element, q: Callable[[str], str], path: str) -> str | None:
    found = element.find(q(path))
    if found is None or found.text is None:
        return None
    text = found.text.strip()
    return text or None


# ISO 20022 amounts (ActiveOrHistoricCurrencyAndAmount) have at most 18 digits, 5 after
# the point; a longer one is not an amount (and as a float it would be inf or lose digits).
_MAX_DIGITS = 18
_MAX_TEXT = 64


def _amount(element: Element | None) -> tuple[Decimal | None, str | None]:
    if element is None or element.text is None:
        return None, None
    text = element.text.strip()
    if len(text) > _MAX_TEXT:
        return None, element.get("Ccy")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None, element.get("Ccy")
    if not value.is_finite() or value.adjusted() >= _MAX_DIGITS or len(value.as_tuple().digits) > _MAX_DIGITS + 5:
        return None, element.get("Ccy")
    return value, element.get("Ccy")


def _date(element: Element, q: Callable[[str], str], path: str) -> str | None | Literal[False]:
    """ISO date of a DateAndDateTimeChoice (Dt or DtTm): None if absent, False if malformed."""
    text = _text(element, q, f"{path}/Dt") or _text(element, q, f"{path}/DtTm")
    if text is None:
        return None
    if not _DATE.match(text):
        return False
    try:
        date.fromisoformat(text[:10])  # a real calendar date: 2024-13-45 would become a silent NaT
    except ValueError:
        return False
    return text


def _opening_balance(stmt: Element, q: Callable[[str], str], where: str, problems: list[str]) -> float | None:
    for wanted in ("OPBD", "PRCD"):
        for bal in stmt.iterfind(q("Bal")):
            code = _text(bal, q, "Tp/CdOrPrtry/Cd")
            if code != wanted:
                continue
            value, _ = _amount(bal.find(q("Amt")))
            sign = _text(bal, q, "CdtDbtInd")
            if value is None or sign not in CREDIT_DEBIT:
                problems.append(f"{where}: balance {wanted} has a malformed Amt (a decimal of at most 18 digits) or CdtDbtInd")
                return None
            return float(value if sign == "CRDT" else -value)
    return None


def _entry(entry: Element, q: Callable[[str], str], where: str, problems: list[str]) -> dict[str, Any] | None:
    amount, currency = _amount(entry.find(q("Amt")))
    sign = _text(entry, q, "CdtDbtInd")
    booking = _date(entry, q, "BookgDt")
    value_date = _date(entry, q, "ValDt")
    status = _text(entry, q, "Sts/Cd") or _text(entry, q, "Sts")
    bad = []
    if amount is None or amount < 0:
        bad.append("Amt (not a non-negative decimal of at most 18 digits)")
    if currency is None or not _CURRENCY.match(currency):
        bad.append("Amt/@Ccy (not an ISO 4217 code)")
    if sign not in CREDIT_DEBIT:
        bad.append("CdtDbtInd (not CRDT or DBIT)")
    if booking is False or value_date is False:
        bad.append("BookgDt/ValDt (not an ISO date)")
    elif booking is None and value_date is None:
        bad.append("BookgDt and ValDt (both missing)")
    if status is None:
        bad.append("Sts (missing)")
    if bad:
        problems.append(f"{where}: " + ", ".join(bad))
        return None
    reversal = _text(entry, q, "RvslInd")
    details = entry.find(q("NtryDtls/TxDtls"))
    party, party_account = None, None
    if details is not None:
        role = "Dbtr" if sign == "CRDT" else "Cdtr"
        party = (_text(details, q, f"RltdPties/{role}/Nm") or _text(details, q, f"RltdPties/{role}/Pty/Nm"))
        party_account = (_text(details, q, f"RltdPties/{role}Acct/Id/IBAN")
                         or _text(details, q, f"RltdPties/{role}Acct/Id/Othr/Id"))
    return {
        "booking_date": booking or value_date,
        "value_date": value_date,
        "amount": float(amount),  # type: ignore[arg-type]
        "credit_debit": sign,
        "currency": currency,
        "status": status,
        "reversal": None if reversal is None else reversal.lower() in ("true", "1"),
        "bank_tx_domain": _text(entry, q, "BkTxCd/Domn/Cd"),
        "bank_tx_family": _text(entry, q, "BkTxCd/Domn/Fmly/Cd"),
        "bank_tx_subfamily": _text(entry, q, "BkTxCd/Domn/Fmly/SubFmlyCd"),
        "bank_tx_proprietary": _text(entry, q, "BkTxCd/Prtry/Cd"),
        "counterparty_name": party,
        "counterparty_account": party_account,
    }


def _frame(rows: list[dict[str, Any]], kinds: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(kinds))
    for name, kind in kinds.items():
        col = frame[name]
        if kind == "datetime":
            # a date-time with an offset and a plain date share one scale: the calendar date
            frame[name] = pd.to_datetime(col.astype("string").str.slice(0, 10), format="%Y-%m-%d", errors="coerce")
        elif kind == "continuous":
            frame[name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            frame[name] = col.astype("object").where(col.notna(), None)
    if TIME in frame and len(frame):
        frame = frame.sort_values([ENTITY_KEY, TIME], kind="stable").reset_index(drop=True)
    return frame
