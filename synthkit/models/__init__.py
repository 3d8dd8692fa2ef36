"""Synthesizers: tables (DPCTGAN, DPTVAE) and per-entity sequences (DPHMM). Each is
registered by class name for safe bundle loading."""

from synthkit.models.base import Synthesizer
from synthkit.models.ctgan import DPCTGAN
from synthkit.models.hmm import DPHMM
from synthkit.models.tvae import DPTVAE

REGISTRY: dict[str, type[Synthesizer]] = {"DPCTGAN": DPCTGAN, "DPTVAE": DPTVAE, "DPHMM": DPHMM}
BY_NAME: dict[str, type[Synthesizer]] = {cls.model_name: cls for cls in REGISTRY.values()}

__all__ = ["DPCTGAN", "DPTVAE", "DPHMM", "REGISTRY", "BY_NAME", "Synthesizer"]
