"""Test strategies that probe the fill model at regular points of the real tape, and the variants that run them."""

from decimal import Decimal

import msgspec
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import TimeInForce
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.config import StrategyConfig
from nautilus_trader.trading.strategy import Strategy

from keel.variant import Variant


def probe_variant(strategy: str, config: dict[str, object], venues: tuple[str, ...] = ("binance_spot",)) -> Variant:
    """Return a variant running one of this module's probes with ``config``, on ``venues``."""
    instruments = config.get("instrument_id") or "-".join(str(item) for item in config.get("instrument_ids", []))
    return msgspec.convert(
        {
            "name": f"{strategy.lower()}-{instruments}",
            "venues": list(venues),
            "strategy": {"strategy_path": f"probes:{strategy}", "config_path": f"probes:{strategy}Config", "config": config},
        },
        Variant,
    )


class TapeProbeConfig(StrategyConfig, frozen=True):
    """
    Configuration of the tape probe.

    Parameters
    ----------
    instrument_id : InstrumentId
        Instrument to trade.
    trade_size : Decimal
        Quantity of every market order (base currency).
    every_n_trades : int
        Send a market order on every N-th trade tick, alternating BUY and SELL.
    """

    instrument_id: InstrumentId
    trade_size: Decimal
    every_n_trades: int = 50


class TapeProbe(Strategy):
    """Alternate market BUY and SELL orders of ``trade_size`` every ``every_n_trades`` trade ticks."""

    def __init__(self, config: TapeProbeConfig) -> None:
        super().__init__(config)
        self._trades_seen = 0
        self._next_side = OrderSide.BUY

    def on_start(self) -> None:
        self.subscribe_trade_ticks(self.config.instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._trades_seen += 1
        if self._trades_seen % self.config.every_n_trades:
            return
        instrument = self.cache.instrument(self.config.instrument_id)
        self.submit_order(self.order_factory.market(self.config.instrument_id, self._next_side, instrument.make_qty(self.config.trade_size)))
        self._next_side = OrderSide.SELL if self._next_side == OrderSide.BUY else OrderSide.BUY

    def on_stop(self) -> None:
        self.unsubscribe_trade_ticks(self.config.instrument_id)


class PassiveProbeConfig(StrategyConfig, frozen=True):
    """
    Configuration of the passive probe.

    Parameters
    ----------
    instrument_id : InstrumentId
        Instrument to trade.
    trade_size : Decimal
        Quantity of every limit order (base currency).
    every_n_trades : int
        Place an order on every N-th trade tick when none is working, alternating BUY at the best bid and
        SELL at the best ask.
    cancel_after_trades : int
        Cancel a working order this many trade ticks after placing it.
    """

    instrument_id: InstrumentId
    trade_size: Decimal
    every_n_trades: int = 20
    cancel_after_trades: int = 200


class PassiveProbe(Strategy):
    """Join the best bid or ask with a post-only limit order; cancel it after a while; flat on stop is not needed."""

    def __init__(self, config: PassiveProbeConfig) -> None:
        super().__init__(config)
        self._trades_seen = 0
        self._placed_at = 0
        self._next_side = OrderSide.BUY
        self._quote: QuoteTick | None = None

    def on_start(self) -> None:
        self.subscribe_quote_ticks(self.config.instrument_id)
        self.subscribe_trade_ticks(self.config.instrument_id)

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self._quote = tick

    def on_trade_tick(self, tick: TradeTick) -> None:
        self._trades_seen += 1
        working = self.cache.orders_open(instrument_id=self.config.instrument_id, strategy_id=self.id)
        if working:
            if self._trades_seen - self._placed_at >= self.config.cancel_after_trades:
                self.cancel_all_orders(self.config.instrument_id)
            return
        if self._trades_seen % self.config.every_n_trades or self._quote is None:
            return
        price = self._quote.bid_price if self._next_side == OrderSide.BUY else self._quote.ask_price
        instrument = self.cache.instrument(self.config.instrument_id)
        order = self.order_factory.limit(
            self.config.instrument_id,
            self._next_side,
            instrument.make_qty(self.config.trade_size),
            price,
            time_in_force=TimeInForce.GTC,
            post_only=True,
        )
        self.submit_order(order)
        self._placed_at = self._trades_seen
        self._next_side = OrderSide.SELL if self._next_side == OrderSide.BUY else OrderSide.BUY

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)


class BasketProbeConfig(StrategyConfig, frozen=True):
    """
    Configuration of the basket probe.

    Parameters
    ----------
    instrument_ids : list[InstrumentId]
        Instruments to trade, each on its own trades.
    trade_sizes : list[Decimal]
        Quantity of every market order of each instrument, in the order of ``instrument_ids``.
    every_n_trades : int
        Send a market order on every N-th trade tick of an instrument, alternating BUY and SELL per instrument.
    """

    instrument_ids: list[InstrumentId]
    trade_sizes: list[Decimal]
    every_n_trades: int = 200


class BasketProbe(Strategy):
    """Alternate market BUY and SELL orders on several instruments from one strategy."""

    def __init__(self, config: BasketProbeConfig) -> None:
        super().__init__(config)
        self._trades_seen = dict.fromkeys(config.instrument_ids, 0)
        self._next_side = dict.fromkeys(config.instrument_ids, OrderSide.BUY)

    def on_start(self) -> None:
        for instrument_id in self.config.instrument_ids:
            self.subscribe_trade_ticks(instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        instrument_id = tick.instrument_id
        self._trades_seen[instrument_id] += 1
        if self._trades_seen[instrument_id] % self.config.every_n_trades:
            return
        size = self.config.trade_sizes[self.config.instrument_ids.index(instrument_id)]
        side = self._next_side[instrument_id]
        self.submit_order(self.order_factory.market(instrument_id, side, self.cache.instrument(instrument_id).make_qty(size)))
        self._next_side[instrument_id] = OrderSide.SELL if side == OrderSide.BUY else OrderSide.BUY

    def on_stop(self) -> None:
        for instrument_id in self.config.instrument_ids:
            self.unsubscribe_trade_ticks(instrument_id)


class BarHoldProbeConfig(StrategyConfig, frozen=True):
    """
    Configuration of the bar hold probe.

    Parameters
    ----------
    instrument_id : InstrumentId
        Instrument to trade.
    bar_type : str
        Bars to subscribe to.
    trade_size : Decimal
        Quantity of the one market order.
    side : str
        ``BUY`` or ``SELL``: the position held.
    """

    instrument_id: InstrumentId
    bar_type: str
    trade_size: Decimal
    side: str = "BUY"


class BarHoldProbe(Strategy):
    """Open one position on the first bar and hold it until stopped, then close it."""

    def __init__(self, config: BarHoldProbeConfig) -> None:
        super().__init__(config)
        self._opened = False

    def on_start(self) -> None:
        self.subscribe_bars(BarType.from_str(self.config.bar_type))

    def on_bar(self, bar: Bar) -> None:
        if self._opened:
            return
        self._opened = True
        instrument = self.cache.instrument(self.config.instrument_id)
        self.submit_order(self.order_factory.market(self.config.instrument_id, OrderSide[self.config.side], instrument.make_qty(self.config.trade_size)))

    def on_stop(self) -> None:
        self.close_all_positions(self.config.instrument_id)
        self.unsubscribe_bars(BarType.from_str(self.config.bar_type))
