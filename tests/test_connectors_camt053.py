"""Connectors, finance: ISO 20022 camt.053 statements (versions .02 and .08 shapes) and
generic transaction CSV exports → accounts + transactions; counterparties kept only as
identifiers; malformed XML, XML attacks and bad entries reported without values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import connectors
from synthkit.errors import SourceError
from synthkit.table import Table

SECRET = "SECRET_CELL_VALUE_4242"


def entry(*, amount: str, sign: str, booked: str, version: int, party: str = "ACME GmbH",
          party_iban: str = "DE02100100109307118603", status: str = "BOOK", domain: str = "PMNT",
          family: str = "ICDT", sub: str = "ESCT", reversal: str | None = None) -> str:
    role = "Dbtr" if sign == "CRDT" else "Cdtr"
    name = f"<Nm>{party}</Nm>" if version < 8 else f"<Pty><Nm>{party}</Nm></Pty>"
    sts = f"<Sts>{status}</Sts>" if version < 8 else f"<Sts><Cd>{status}</Cd></Sts>"
    rvsl = f"<RvslInd>{reversal}</RvslInd>" if reversal else ""
    return f"""
      <Ntry>
        <NtryRef>REF-{SECRET}</NtryRef>
        <Amt Ccy="EUR">{amount}</Amt>
        <CdtDbtInd>{sign}</CdtDbtInd>{rvsl}
        {sts}
        <BookgDt><Dt>{booked}</Dt></BookgDt>
        <ValDt><Dt>{booked}</Dt></ValDt>
        <BkTxCd><Domn><Cd>{domain}</Cd><Fmly><Cd>{family}</Cd><SubFmlyCd>{sub}</SubFmlyCd></Fmly></Domn>
          <Prtry><Cd>NTRF+166</Cd><Issr>DK</Issr></Prtry></BkTxCd>
        <NtryDtls><TxDtls>
          <RltdPties><{role}>{name}</{role}><{role}Acct><Id><IBAN>{party_iban}</IBAN></Id></{role}Acct></RltdPties>
          <RmtInf><Ustrd>{SECRET} invoice text</Ustrd></RmtInf>
        </TxDtls></NtryDtls>
      </Ntry>"""


def statement(*, iban: str, stmt_id: str, created: str, entries: list[str], version: int,
              opening: str = "1000.00", opening_sign: str = "CRDT") -> str:
    bic = "<BIC>COBADEFFXXX</BIC>" if version < 4 else "<BICFI>COBADEFFXXX</BICFI>"
    return f"""
    <Stmt>
      <Id>{stmt_id}</Id>
      <CreDtTm>{created}</CreDtTm>
      <Acct><Id><IBAN>{iban}</IBAN></Id><Tp><Cd>CACC</Cd></Tp><Ccy>EUR</Ccy><Ownr><Nm>{SECRET} owner</Nm></Ownr>
        <Svcr><FinInstnId>{bic}</FinInstnId></Svcr></Acct>
      <Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{opening}</Amt>
        <CdtDbtInd>{opening_sign}</CdtDbtInd><Dt><Dt>2024-01-01</Dt></Dt></Bal>
      {''.join(entries)}
    </Stmt>"""


def document(statements: list[str], *, version: int) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.{version:02d}">
  <BkToCstmrStmt>
    <GrpHdr><MsgId>MSG1</MsgId><CreDtTm>2024-02-01T06:00:00</CreDtTm></GrpHdr>
    {''.join(statements)}
  </BkToCstmrStmt>
</Document>"""


IBAN_A = "DE89370400440532013000"
IBAN_B = "FR1420041010050500013M02606"


@pytest.fixture
def statements(tmp_path: Path) -> Path:
    folder = tmp_path / "statements"
    folder.mkdir()
    v02 = document([statement(iban=IBAN_A, stmt_id="S-A-1", created="2024-01-31T18:00:00", version=2, entries=[
        entry(amount="2500.00", sign="CRDT", booked="2024-01-25", version=2, domain="PMNT", family="RCDT"),
        entry(amount="49.90", sign="DBIT", booked="2024-01-03", version=2, reversal="false"),
    ])], version=2)
    v08 = document([
        statement(iban=IBAN_B, stmt_id="S-B-1", created="2024-01-31T18:00:00", version=8, opening="20.00",
                  opening_sign="DBIT", entries=[entry(amount="12.34", sign="DBIT", booked="2024-01-10", version=8,
                                                      status="PDNG")]),
        statement(iban=IBAN_A, stmt_id="S-A-2", created="2024-02-29T18:00:00", version=8, opening="3450.10", entries=[
            entry(amount="100", sign="DBIT", booked="2024-02-02", version=8, reversal="true")]),
    ], version=8)
    (folder / "a_v02.xml").write_text(v02)
    (folder / "b_v08.xml").write_text(v08)
    (folder / "c_repeat.xml").write_text(v02)  # the same statement exported twice
    return folder


def test_statements_map_to_accounts_and_transactions(statements: Path) -> None:
    source = connectors.read_source(f"camt053:{statements}")
    assert (source.kind, source.entity_table, source.events_tables) == ("camt053", "accounts", ("transactions",))
    accounts = source.tables["accounts"].set_index("account_id")
    assert sorted(accounts.index) == sorted([IBAN_A, IBAN_B])
    assert accounts.loc[IBAN_A, "opening_balance"] == 1000.0  # from the earliest statement
    assert accounts.loc[IBAN_B, "opening_balance"] == -20.0   # a debit balance is negative
    assert accounts.loc[IBAN_A, "servicer_bic"] == accounts.loc[IBAN_B, "servicer_bic"] == "COBADEFFXXX"
    assert accounts.loc[IBAN_A, "account_type"] == "CACC"

    tx = source.tables["transactions"]
    assert len(tx) == 4  # the repeated statement is read once
    a = tx[tx["account_id"] == IBAN_A]
    assert a["booking_date"].tolist() == [pd.Timestamp(d) for d in ("2024-01-03", "2024-01-25", "2024-02-02")]
    assert a["amount"].tolist() == [49.90, 2500.0, 100.0]
    assert a["credit_debit"].tolist() == ["DBIT", "CRDT", "DBIT"]
    assert a["reversal"].tolist() == [False, None, True]
    assert a["bank_tx_family"].tolist() == ["ICDT", "RCDT", "ICDT"]
    assert tx.set_index("account_id").loc[IBAN_B, "status"] == "PDNG"  # v08 <Sts><Cd>
    assert set(tx["counterparty_name"]) == {"ACME GmbH"} and set(tx["currency"]) == {"EUR"}
    for frame in source.tables.values():  # remittance text, owner names, references: never read
        assert not frame.astype(str).apply(lambda c: c.str.contains(SECRET)).any().any()


def test_schemas_keep_counterparties_as_identifiers(statements: Path) -> None:
    source = connectors.read_source(f"camt053:{statements}")
    schema = source.schemas["transactions"]
    assert schema.entity_key == "account_id" and schema.sequence_index == "booking_date"
    assert {c.name for c in schema.identifier_columns} == {"account_id", "counterparty_name", "counterparty_account"}
    assert schema.column("credit_debit").categories == ("CRDT", "DBIT")
    for name, frame in source.tables.items():
        Table.from_frame(frame, source.schemas[name])
    sf = source.sequence_frames()
    assert sf.events["event_type"].unique().tolist() == ["transactions"]
    Table.from_frame(sf.events, sf.events_schema)
    # every mapped column is kept, filled or not; booking dates are dates by the standard
    from connectors.camt053 import ACCOUNT_KINDS, TRANSACTION_KINDS
    assert list(source.tables["accounts"].columns) == list(ACCOUNT_KINDS)
    assert list(source.tables["transactions"].columns) == list(TRANSACTION_KINDS)
    assert sf.events_schema.column("booking_date").time_unit == "day"


def test_bad_entries_are_listed_without_values(tmp_path: Path) -> None:
    bad = document([statement(iban=IBAN_A, stmt_id="S1", created="2024-01-31T00:00:00", version=2, entries=[
        entry(amount="10.00", sign="CRDT", booked="2024-01-02", version=2),
        entry(amount=SECRET, sign="CRDT", booked="2024-01-02", version=2),
        entry(amount="5.00", sign="XXXX", booked="not-a-date", version=2),
    ])], version=2)
    (tmp_path / "bad.xml").write_text(bad)
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"camt053:{tmp_path}")
    message = str(err.value)
    assert "2 problems" in message
    assert "bad.xml statement 1 entry 2: Amt (not a non-negative decimal of at most 18 digits)" in message
    assert "bad.xml statement 1 entry 3: CdtDbtInd (not CRDT or DBIT), BookgDt/ValDt (not an ISO date)" in message
    assert SECRET not in message


@pytest.mark.parametrize("content, problem", [
    ('<?xml version="1.0"?>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">\n<BkToCstmrStmt>\n</Document>',
     r"not well-formed XML \(line 4"),
    ('<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.052.001.02"/>',
     "not a camt.053 statement"),
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
     '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&lol2;</Document>', "refused for safety"),
    ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
     '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">&x;</Document>', "refused for safety"),
])
def test_malformed_foreign_and_hostile_xml(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "x.xml").write_text(content)
    with pytest.raises(SourceError, match=problem):
        connectors.read_source(f"camt053:{tmp_path}")


def test_missing_folder_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file or folder"):
        connectors.read_source(f"camt053:{tmp_path / 'nope'}")
    with pytest.raises(SourceError, match="no .xml files"):
        connectors.read_source(f"camt053:{tmp_path}")


# ------------------------------------------------------------------ generic CSV exports
def test_transaction_csv_export_maps_to_the_camt_layout(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "Konto;Buchungstag;Betrag;Waehrung;Beguenstigter/Zahlungspflichtiger;Verwendungszweck\n"
        f"{IBAN_A};03.01.2024;-49,90;EUR;ACME GmbH;{SECRET}\n"
        f"{IBAN_A};25.01.2024;2.500,00;EUR;Employer AG;{SECRET}\n"
        f"{IBAN_B};10.01.2024;-12,34;EUR;Shop;{SECRET}\n")
    source = connectors.read_source(f"banktx:{path}", decimal_comma=True,
                                    columns={"counterparty_name": "Beguenstigter/Zahlungspflichtiger"})
    tx = source.tables["transactions"]
    assert tx["amount"].tolist() == [49.90, 2500.0, 12.34]
    assert tx["credit_debit"].tolist() == ["DBIT", "CRDT", "DBIT"]
    assert tx["booking_date"].tolist() == [pd.Timestamp("2024-01-03"), pd.Timestamp("2024-01-25"),
                                           pd.Timestamp("2024-01-10")]
    assert "Verwendungszweck" not in tx.columns  # free text dropped
    assert not tx.astype(str).apply(lambda c: c.str.contains(SECRET)).any().any()
    assert source.schemas["transactions"].column("counterparty_name").kind == "identifier"
    assert sorted(source.tables["accounts"]["account_id"]) == sorted([IBAN_A, IBAN_B])
    Table.from_frame(tx, source.schemas["transactions"])


def test_transaction_csv_problems_are_named_without_counts(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(f"account,date,amount,dc,currency\nA1,2024-01-01,10.0,C,EUR\nA1,2024-01-02,5.0,{SECRET},EUR\n"
                    "A2,2024-01-03,,D,EUR\n")
    with pytest.raises(SourceError) as err:
        connectors.read_source(f"banktx:{path}")
    message = str(err.value)
    assert "amount: some rows are missing or not numbers" in message
    assert "credit_debit: some rows hold neither a credit nor a debit marker" in message
    assert SECRET not in message
    path.write_text("when,value\n2024-01-01,1.0\n")
    with pytest.raises(SourceError, match=r"no column for \['account_id', 'booking_date', 'amount'\]"):
        connectors.read_source(f"banktx:{path}")
