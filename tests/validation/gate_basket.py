"""A strategy of two spot instruments for the gate's tests: in and out of each on its own trade count, flat on stop.

Decisions depend only on each instrument's trade stream and the strategy's own position, never on the clock,
so a backtest over a recorded live session takes the same decisions as the live node did (like ``EMACross``).
"""

from pathlib import Path

import yaml
from nautilus_trader.config import PositiveInt
from nautilus_trader.model.data import TradeTick
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import ClientOrderId
from nautilus_trader.model.identifiers import InstrumentId

from keel.strategies.base import KeelStrategy
from keel.strategies.base import KeelStrategyConfig


class GateBasketConfig(KeelStrategyConfig, frozen=True, kw_only=True):
    """
    Configuration for ``GateBasket``.

    Parameters
    ----------
    instrument_ids : list[InstrumentId]
        Spot pairs to trade, each on its own trades.
    every_n_trades : PositiveInt, default 1000
        On every N-th trade of an instrument: buy the minimum size when flat, sell what is closable when long
        (flat: nothing an order could sell, ``keel.sizing`` dust rule at the trade's price).
    """

    instrument_ids: list[InstrumentId]
    every_n_trades: PositiveInt = 1000


class GateBasket(KeelStrategy):
    """Long-only, one market order at a time per instrument, alternating in and out every N trades of it."""

    def __init__(self, config: GateBasketConfig) -> None:
        super().__init__(config)
        self.trades_seen: dict[InstrumentId, int] = {}
        self.working_orders: dict[InstrumentId, ClientOrderId] = {}

    def on_start_strategy(self) -> None:
        for instrument_id in self.config.instrument_ids:
            self.trades_seen[instrument_id] = 0
            self.subscribe_trade_ticks(instrument_id)

    def on_trade_tick(self, tick: TradeTick) -> None:
        instrument_id = tick.instrument_id
        self.trades_seen[instrument_id] += 1
        if self.trades_seen[instrument_id] % self.config.every_n_trades:
            return
        working = self.working_orders.get(instrument_id)
        if working is not None and not self.cache.order(working).is_closed:
            return
        # Priced, so that a remainder below the minimum notional counts as flat: no order could sell it.
        sellable = self.closable(instrument_id, float(tick.price))
        if sellable is None:
            self.working_orders[instrument_id] = self.submit_market(instrument_id, OrderSide.BUY, self.entry_quantity(instrument_id, float(tick.price)))
        else:
            self.working_orders[instrument_id] = self.submit_market(instrument_id, OrderSide.SELL, sellable)

    def on_stop_strategy(self) -> None:
        for instrument_id in self.config.instrument_ids:
            self.unsubscribe_trade_ticks(instrument_id)


INSTRUMENT_IDS = ["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"]
# On the sample (9,757 BTCUSDT and 6,106 ETHUSDT trades) about 8 and 5 orders, decisions 20 s or more apart (7 s at
# 3x replay), so a node lagging the feed on a busy machine never finds its last order still working.
EVERY_N_TRADES = 1200


def write_basket_variant(path: Path) -> Path:
    """Write the variant file of this strategy on both sample pairs at Binance spot to ``path`` and return it."""
    variant = {
        "name": "gate_basket",
        "venues": ["binance_spot"],
        "description": "Two spot pairs from one strategy, in and out every N trades of each.",
        "strategy": {
            "strategy_path": "gate_basket:GateBasket",
            "config_path": "gate_basket:GateBasketConfig",
            "config": {"instrument_ids": INSTRUMENT_IDS, "every_n_trades": EVERY_N_TRADES, "order_id_tag": "001"},
        },
    }
    path.write_text(yaml.safe_dump(variant, sort_keys=False))
    return path
