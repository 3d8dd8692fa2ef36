"""synthkit: differentially private synthesis of tabular data for healthcare and finance.

    from synthkit import DPCTGAN, PrivacyBudget, load
    model = DPCTGAN(epochs=50, seed=0).fit(frame, budget=PrivacyBudget(epsilon=1, delta=1e-6))
"""

from synthkit.errors import (
    ArtifactError,
    BudgetExceededError,
    ConfigError,
    DataValidationError,
    NotFittedError,
    SchemaError,
    SourceError,
    SynthkitError,
)
from synthkit.ledger import PrivacyBudget, PrivacyLedger
from synthkit.schema import Column, Schema, infer_schema
from synthkit.table import Table

__version__ = "0.1.0"

# Models and bundles need torch; they load on first access so that `reports` and the
# dashboard, which only read schemas and ledgers, never import torch (DESIGN.md §3).
_LAZY = {"load": "synthkit.bundle", "DPCTGAN": "synthkit.models", "DPTVAE": "synthkit.models",
         "DPHMM": "synthkit.models", "Synthesizer": "synthkit.models"}


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synthkit' has no attribute {name!r}")

__all__ = [
    "DPCTGAN", "DPTVAE", "DPHMM", "PrivacyBudget", "PrivacyLedger", "Synthesizer", "Schema", "Column", "Table",
    "infer_schema", "load", "SynthkitError", "SchemaError", "DataValidationError", "BudgetExceededError",
    "ArtifactError", "NotFittedError", "ConfigError", "SourceError",
]
