"""Everything a handler needs, built once at startup (by `playground.services`) and passed in.

The type lives here, below every capability that takes it; the composition root that builds it sits at the top.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ..core.pricing import Price, load_prices
from ..core.store import Store
from ..providers.registry import Registry
from .personas import Persona


@dataclass
class Services:
    store: Store
    registry: Registry
    personas: dict[str, Persona]
    home: Path
    datasets_dir: Path
    personas_dir: Path
    problems: list[str] = field(default_factory=list)

    @property
    def prices_path(self) -> Path:
        return self.home / "prices.json"

    def prices(self) -> dict[str, Price]:
        return load_prices(self.prices_path)
