"""Table synthesizers. Each is registered by class name for safe bundle loading."""

from synthkit.models.base import Synthesizer
from synthkit.models.ctgan import DPCTGAN
from synthkit.models.tvae import DPTVAE

REGISTRY: dict[str, type[Synthesizer]] = {"DPCTGAN": DPCTGAN, "DPTVAE": DPTVAE}
BY_NAME: dict[str, type[Synthesizer]] = {cls.model_name: cls for cls in REGISTRY.values()}

__all__ = ["DPCTGAN", "DPTVAE", "REGISTRY", "BY_NAME", "Synthesizer"]
