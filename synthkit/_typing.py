"""Option strings used across synthkit, in one place (see STYLE.md)."""

from typing import Literal

ColumnKind = Literal["continuous", "integer", "categorical", "boolean", "datetime", "identifier"]
COLUMN_KINDS: tuple[str, ...] = ("continuous", "integer", "categorical", "boolean", "datetime", "identifier")
NUMERIC_KINDS: tuple[str, ...] = ("continuous", "integer", "datetime")
DISCRETE_KINDS: tuple[str, ...] = ("categorical", "boolean")

DeviceOption = Literal["auto", "cpu", "cuda"]
PrivacyUnit = Literal["row", "entity"]
ModelName = Literal["dpctgan", "dptvae", "dphmm"]
