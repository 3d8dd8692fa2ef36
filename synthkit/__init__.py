"""synthkit: differentially private synthesis of tabular data for healthcare and finance.

    from synthkit import DPCTGAN, PrivacyBudget, load
    model = DPCTGAN(epochs=50, seed=0).fit(frame, budget=PrivacyBudget(epsilon=1, delta=1e-6))
"""

from synthkit.bundle import load
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
from synthkit.models import DPCTGAN, DPHMM, DPTVAE, Synthesizer
from synthkit.schema import Column, Schema, infer_schema
from synthkit.table import Table

__version__ = "0.1.0"

__all__ = [
    "DPCTGAN", "DPTVAE", "DPHMM", "PrivacyBudget", "PrivacyLedger", "Synthesizer", "Schema", "Column", "Table",
    "infer_schema", "load", "SynthkitError", "SchemaError", "DataValidationError", "BudgetExceededError",
    "ArtifactError", "NotFittedError", "ConfigError", "SourceError",
]
