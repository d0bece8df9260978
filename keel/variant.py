"""Variant files: one strategy configuration, run unchanged in backtest and live.

A variant file is YAML (or JSON) naming the venue models its instruments trade on, the strategy class, its
config class and the config values::

    name: ema_cross_btcusdt
    venues: [binance_spot]
    strategy:
      strategy_path: keel.strategies.ema_cross:EMACross
      config_path: keel.strategies.ema_cross:EMACrossConfig
      config:
        instrument_id: BTCUSDT.BINANCE
        fast_period: 50

The instruments a variant trades are the strategy config's instrument ids: the values of ``instrument_id``,
``instrument_ids`` and of every key ending in ``_instrument_id`` (a spread's legs). Each instrument trades on the
venue model of its nautilus venue (``BTCUSDT-PERP.BINANCE`` on the variant's model named ``BINANCE``), so a
variant holds at most one model per nautilus venue: nautilus runs one account per venue in a backtest, and one
Binance execution client per node live.

The backtest adds a data window; the live node adds an environment file. Neither changes the strategy section,
which is what makes a backtest and a live session comparable.
"""

from pathlib import Path
from typing import Any

import msgspec
import yaml
from nautilus_trader.common.config import ImportableActorConfig
from nautilus_trader.trading.config import ImportableStrategyConfig
from nautilus_trader.trading.config import StrategyFactory
from nautilus_trader.trading.strategy import Strategy

from keel.atomic_files import write_text_atomic
from keel.config_files import load_struct

INSTRUMENT_KEY_SUFFIX = "_instrument_id"


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
    venues : list[str]
        Names of the venue models the instruments trade on (``configs/venues/<name>.yaml``, e.g.
        ``binance_spot``, ``binance_usdm``, ``okx``): one per nautilus venue. They select the backtest's simulated
        venues and the live node's clients.
    actors : list[ImportableActorConfig]
        Actors of the variant's own, by import path, added to the node beside the ones every node has.
    description : str
        Free text for humans.
    origin : dict[str, Any]
        Where the variant came from (e.g. the sweep and trial that produced it).
    """

    name: str
    strategy: ImportableStrategyConfig
    venues: list[str] = msgspec.field(default_factory=lambda: ["binance_spot"])
    actors: list[ImportableActorConfig] = []
    description: str = ""
    origin: dict[str, Any] = {}

    @property
    def instrument_ids(self) -> list[str]:
        """Return the instruments of the strategy config, in the order they appear, each once."""
        return instrument_ids_of(self.strategy.config)

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
    if not variant.instrument_ids:
        raise VariantError(
            f"{path}: strategy.config names no instrument: expected instrument_id, instrument_ids or a key ending "
            f"in {INSTRUMENT_KEY_SUFFIX!r}",
        )
    if not variant.venues or len(set(variant.venues)) != len(variant.venues):
        raise VariantError(f"{path}: venues: expected one or more distinct venue model names, got {variant.venues}")
    try:
        variant.build_strategy()
    except Exception as error:  # the strategy's own config validation, import errors
        raise VariantError(f"{path}: strategy cannot be built from strategy.config: {error}") from error
    return variant


def write_variant(variant: Variant, path: str | Path) -> Path:
    """Write a variant as YAML, atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(yaml.safe_dump(variant.to_primitives(), sort_keys=False), path)


def instrument_ids_of(config: dict[str, Any]) -> list[str]:
    """
    Return the instrument ids a strategy config names, in order, each once.

    They are the values of ``instrument_id``, ``instrument_ids`` (a list) and of every key ending in
    ``_instrument_id``; a strategy config keeps its instruments under such names so that Keel, which never
    imports a strategy to read it, knows what to load and trade.
    """
    found: list[str] = []
    for key, value in config.items():
        if key == "instrument_ids":
            found.extend(str(item) for item in value or [])
        elif (key == "instrument_id" or key.endswith(INSTRUMENT_KEY_SUFFIX)) and value is not None:
            found.append(str(value))
    return list(dict.fromkeys(found))
