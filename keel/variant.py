"""Variant files: one strategy configuration, run unchanged in backtest and live.

A variant file is YAML (or JSON) naming the strategy class, its config class and the config values::

    name: ema_cross_btcusdt
    venue: binance_spot
    strategy:
      strategy_path: keel.strategies.ema_cross:EMACross
      config_path: keel.strategies.ema_cross:EMACrossConfig
      config:
        instrument_id: BTCUSDT.BINANCE
        fast_period: 50

The backtest adds a venue model and a data window; the live node adds an environment file. Neither
changes the strategy section, which is what makes a backtest and a live session comparable.
"""

from pathlib import Path
from typing import Any

import msgspec
import yaml
from nautilus_trader.trading.config import ImportableStrategyConfig
from nautilus_trader.trading.config import StrategyFactory
from nautilus_trader.trading.strategy import Strategy

from keel.config_files import load_struct


class VariantError(ValueError):
    """A variant file is missing, malformed, or names a strategy that cannot be built."""


class Variant(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    One strategy configuration.

    Parameters
    ----------
    name : str
        Unique, file-system safe name of the variant (used for run folders and MLflow run names).
    strategy : ImportableStrategyConfig
        Import paths of the strategy and its config class, and the config values.
    venue : str
        Name of the venue the strategy trades, e.g. ``binance_spot``; selects the backtest venue model and
        the live adapter.
    description : str
        Free text for humans.
    origin : dict[str, Any]
        Where the variant came from (e.g. the sweep and trial that produced it).
    """

    name: str
    strategy: ImportableStrategyConfig
    venue: str = "binance_spot"
    description: str = ""
    origin: dict[str, Any] = {}

    @property
    def instrument_id(self) -> str:
        """Return the ``instrument_id`` of the strategy config."""
        return str(self.strategy.config["instrument_id"])

    def build_strategy(self) -> Strategy:
        """Build the strategy object, as a nautilus node would."""
        return StrategyFactory.create(self.strategy)

    def with_config(self, name: str, overrides: dict[str, Any], origin: dict[str, Any] | None = None) -> "Variant":
        """Return a copy with a new name and some strategy config values replaced."""
        strategy = ImportableStrategyConfig(
            strategy_path=self.strategy.strategy_path,
            config_path=self.strategy.config_path,
            config={**self.strategy.config, **overrides},
        )
        return msgspec.structs.replace(self, name=name, strategy=strategy, origin=origin or self.origin)

    def to_primitives(self) -> dict[str, Any]:
        """Return the variant as plain data, ready for YAML/JSON."""
        return msgspec.to_builtins(self)


def load_variant(path: str | Path) -> Variant:
    """
    Load and validate a variant file.

    Raises
    ------
    VariantError
        If the file is missing or not YAML/JSON, a field is missing or has the wrong type, or the strategy
        cannot be imported and built from its config. The message names the file and the field.
    """
    path = Path(path)
    variant = load_struct(path, Variant, VariantError, "variant")
    if "instrument_id" not in variant.strategy.config:
        raise VariantError(f"{path}: strategy.config.instrument_id is required")
    try:
        variant.build_strategy()
    except Exception as error:  # the strategy's own config validation, import errors
        raise VariantError(f"{path}: strategy cannot be built from strategy.config: {error}") from error
    return variant


def write_variant(variant: Variant, path: str | Path) -> Path:
    """Write a variant as YAML, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(yaml.safe_dump(variant.to_primitives(), sort_keys=False))
    temporary.replace(path)
    return path
