"""Backtest venue models: one small, explicit knob per realism concern (fees, latency, fills, book).

Nautilus has sensible mechanics but some surprising defaults (``LatencyModelConfig`` defaults to one second);
a Keel venue model states every choice, and a YAML file in ``configs/venues/`` can override any of them.
"""

from pathlib import Path
from typing import Any
from typing import Literal

import msgspec
from nautilus_trader.backtest.config import BacktestVenueConfig
from nautilus_trader.backtest.config import ImportableFeeModelConfig
from nautilus_trader.backtest.config import ImportableFillModelConfig
from nautilus_trader.backtest.config import ImportableLatencyModelConfig
from nautilus_trader.common.config import ImportableActorConfig

from keel.config_files import load_struct
from keel.settings import CONFIGS_DIR
from keel.variant import Variant


class VenueModelError(ValueError):
    """A venue model file is missing or malformed."""


class FeeKnob(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    How commissions are charged.

    Parameters
    ----------
    model : str, default "maker_taker"
        ``maker_taker`` charges the instrument's maker/taker rates (Binance spot VIP0: 0.1% / 0.1%).

    """

    model: str = "maker_taker"

    def to_config(self) -> ImportableFeeModelConfig:
        if self.model != "maker_taker":
            raise VenueModelError(f"fees.model: expected 'maker_taker', got {self.model!r}")
        return ImportableFeeModelConfig(
            fee_model_path="nautilus_trader.backtest.models:MakerTakerFeeModel",
            config_path="nautilus_trader.backtest.config:MakerTakerFeeModelConfig",
            config={},
        )


class LatencyKnob(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    Order round-trip latency between the strategy and the matching engine.

    Parameters
    ----------
    base_ms : float, default 5.0
        One-way latency applied to every command. 5 ms is a node close to the venue (or the loopback
        emulator plus the adapter's own processing); measure and replace it from live sessions.
    insert_ms : float, default 0.0
        Extra latency for new orders.
    update_ms : float, default 0.0
        Extra latency for modifications.
    cancel_ms : float, default 0.0
        Extra latency for cancels.

    """

    base_ms: float = 5.0
    insert_ms: float = 0.0
    update_ms: float = 0.0
    cancel_ms: float = 0.0

    def to_config(self) -> ImportableLatencyModelConfig:
        return ImportableLatencyModelConfig(
            latency_model_path="nautilus_trader.backtest.models:LatencyModel",
            config_path="nautilus_trader.backtest.config:LatencyModelConfig",
            config={
                "base_latency_nanos": int(self.base_ms * 1_000_000),
                "insert_latency_nanos": int(self.insert_ms * 1_000_000),
                "update_latency_nanos": int(self.update_ms * 1_000_000),
                "cancel_latency_nanos": int(self.cancel_ms * 1_000_000),
            },
        )


class FillKnob(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    How orders fill against the market (``docs/backtest.md`` says what each choice assumes).

    Parameters
    ----------
    model : str, default "tape"
        ``tape``: taker orders fill against the book the tape shows at matching time, the latest quote as its
        top, minus what trades since have taken, depth beyond it from the L2 deltas
        (``keel.backtests.tape_fills``); resting orders fill when trades give them their turn in the queue
        (``keel.backtests.queue_tracker``). ``book``: nautilus's own matching on its L2 book, rebuilt from
        deltas only (on Binance up to one depth update, 100 ms, stale), with its ``trade_execution`` and
        ``queue_position`` (trades only reduce the queue), for comparison.
    queue_model : str, default "risk_averse"
        With ``tape``: how depth changes at a resting order's price move it in the queue. ``risk_averse``:
        only trades move it up, a shrinking level caps the size ahead. ``power_prob``: a decrease not explained
        by trades is a cancel from behind the order with probability ``back**n / (front**n + back**n)``.
        ``none``: first in line (an optimistic bound).
    queue_power : float, default 3.0
        The exponent ``n`` of ``power_prob``.
    prob_fill_on_limit : float, default 1.0
        Probability a resting limit order fills when the market is exactly at its price (nautilus rolls it
        at each touch).
    prob_slippage : float, default 0.0
        Probability a market order slips one tick beyond the book (nautilus applies it to L1 books only).
    random_seed : int, default 42
        Seed of the fill model, fixed so a run is repeatable (it also seeds Python's global ``random``).
    liquidity_consumption : bool, default True
        With ``book``: fills consume the level's liquidity until fresh data arrives, so two orders cannot both
        take the same size (nautilus_trader#2564). The ``tape`` model always does this itself, on its merged
        book (nautilus's own tracking would cap its fills by the stale depth's sizes).

    """

    model: Literal["tape", "book"] = "tape"
    queue_model: Literal["risk_averse", "power_prob", "none"] = "risk_averse"
    queue_power: float = 3.0
    prob_fill_on_limit: float = 1.0
    prob_slippage: float = 0.0
    random_seed: int = 42
    liquidity_consumption: bool = True

    def to_config(self) -> ImportableFillModelConfig:
        config = {"prob_fill_on_limit": self.prob_fill_on_limit, "prob_slippage": self.prob_slippage, "random_seed": self.random_seed}
        if self.model == "tape":
            return ImportableFillModelConfig(
                fill_model_path="keel.backtests.tape_fills:TapeFillModel",
                config_path="keel.backtests.tape_fills:TapeFillModelConfig",
                config=config | {"queue_model": self.queue_model, "queue_power": self.queue_power},
            )
        return ImportableFillModelConfig(
            fill_model_path="nautilus_trader.backtest.models:FillModel",
            config_path="nautilus_trader.backtest.config:FillModelConfig",
            config=config,
        )

    def modules(self) -> list[ImportableActorConfig]:
        """Return the simulation modules the fill model needs (the tape model reads the exchange's state)."""
        if self.model != "tape":
            return []
        return [
            ImportableActorConfig(
                actor_path="keel.backtests.tape_fills:TapeFillBinder",
                config_path="keel.backtests.tape_fills:TapeFillBinderConfig",
                config={},
            ),
        ]


class VenueModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """
    A simulated venue.

    Parameters
    ----------
    name : str, default "BINANCE"
        Venue identifier, as in instrument ids.
    account_type : str, default "CASH"
        ``CASH`` for spot (nautilus then enforces balances and minimum notional), ``MARGIN`` for perps.
    oms_type : str, default "NETTING"
        One position per instrument, as on the venue.
    starting_balances : list[str]
        Balances at the start, e.g. ``["10000 USDT", "0.001 BTC"]``: required, the venue model file is the one
        place they are written (the emulator reads them from it too, ``keel.starting_balances``). A little base
        asset is held because Binance takes the buy commission in the bought asset.
    default_leverage : float, default 1.0
        Leverage of a ``MARGIN`` account (nautilus's margin model; 1.0 holds the full notional as margin).
    book_type : str, default "L2_MBP"
        ``L2_MBP`` matches market orders against the depth rebuilt from the catalog's order book deltas.
    close_out_before_end_ms : float, default 1000.0
        The strategies are stopped this long before the last data point, so that their close-on-stop orders
        still meet market data and fill, as they do live after the feed ends.
    fees : FeeKnob
        Commissions.
    latency : LatencyKnob
        Command latency.
    fills : FillKnob
        Fill mechanics.

    """

    name: str = "BINANCE"
    account_type: str = "CASH"
    oms_type: str = "NETTING"
    starting_balances: list[str]
    default_leverage: float = 1.0
    book_type: str = "L2_MBP"
    close_out_before_end_ms: float = 1000.0
    fees: FeeKnob = FeeKnob()
    latency: LatencyKnob = LatencyKnob()
    fills: FillKnob = FillKnob()

    def to_config(self) -> BacktestVenueConfig:
        """Return the nautilus venue config for this model."""
        return BacktestVenueConfig(
            name=self.name,
            oms_type=self.oms_type,
            account_type=self.account_type,
            starting_balances=self.starting_balances,
            default_leverage=self.default_leverage,
            book_type=self.book_type,
            fee_model=self.fees.to_config(),
            latency_model=self.latency.to_config(),
            fill_model=self.fills.to_config(),
            # Trades fill resting orders; with the tape model, Keel's queue tracker decides how much
            # (nautilus's own queue position would count a second queue on top of it).
            trade_execution=True,
            liquidity_consumption=self.fills.model == "book" and self.fills.liquidity_consumption,
            queue_position=self.fills.model == "book",
            modules=self.fills.modules() or None,
        )

    def to_primitives(self) -> dict[str, Any]:
        """Return the model as plain data (for run folders and MLflow)."""
        return msgspec.to_builtins(self)


def venue_model_path(venue: str) -> Path:
    """Return the shipped model file for a venue name such as ``binance_spot``."""
    return CONFIGS_DIR / "venues" / f"{venue}.yaml"


def load_venue_model(path: str | Path) -> VenueModel:
    """
    Load a venue model file; fields it leaves out keep the defaults above.

    Raises
    ------
    VenueModelError
        If the file is missing, not YAML, or a field is unknown or of the wrong type.
    """
    path = Path(path)
    model = load_struct(path, VenueModel, VenueModelError, "venue model")
    try:
        model.fees.to_config()
    except VenueModelError as error:
        raise VenueModelError(f"{path}: {error}") from error
    if model.fills.queue_power <= 0:
        raise VenueModelError(f"{path}: fills.queue_power must be > 0, got {model.fills.queue_power}")
    return model


def venue_model_for(venue: str) -> VenueModel:
    """Return the shipped model of a variant's venue (``configs/venues/<venue>.yaml``)."""
    path = venue_model_path(venue)
    if not path.is_file():
        raise VenueModelError(f"no venue model for venue {venue!r}: expected {path}")
    return load_venue_model(path)


def venue_models_for(variant: Variant) -> dict[str, VenueModel]:
    """
    Return the shipped venue model of each of the variant's venues, keyed by nautilus venue (``BINANCE``).

    Raises
    ------
    VenueModelError
        If two of the variant's models simulate the same nautilus venue (nautilus runs one account per venue),
        or an instrument's venue has no model among the variant's venues.
    """
    models: dict[str, VenueModel] = {}
    for name in variant.venues:
        model = venue_model_for(name)
        if model.name in models:
            raise VenueModelError(
                f"variant {variant.name!r}: venues {variant.venues} hold two models of venue {model.name}; a variant trades "
                "one account per venue",
            )
        models[model.name] = model
    for instrument_id in variant.instrument_ids:
        venue = instrument_id.rsplit(".", 1)[-1]
        if venue not in models:
            raise VenueModelError(
                f"variant {variant.name!r}: instrument {instrument_id} trades on {venue}, but none of its venues "
                f"{variant.venues} models {venue} (their venues: {sorted(models)})",
            )
    return models
