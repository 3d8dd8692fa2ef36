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

__version__ = "0.1.0"

# Everything but the errors loads on first access: models and bundles need torch, so
# `reports` and the dashboard, which only read schemas and ledgers, never import it
# (DESIGN.md §3); schema, ledger and table need pandas and numpy, so the CLI can refuse a
# bad option in a fraction of a second before any of them is imported.
_LAZY = {"load": "synthkit.bundle", "DPCTGAN": "synthkit.models", "DPTVAE": "synthkit.models",
         "DPHMM": "synthkit.models", "Synthesizer": "synthkit.models",
         "PrivacyBudget": "synthkit.ledger", "PrivacyLedger": "synthkit.ledger", "Column": "synthkit.schema",
         "Schema": "synthkit.schema", "infer_schema": "synthkit.schema", "Table": "synthkit.table"}


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
