"""
The venue's matching engine: the account's own orders against the venue's book and trade prints.

"The book" is each symbol's ``VenueView``: the freshest state the replayed depth diffs, bookTicker and
trades reveal at the order's arrival, each at its own timestamp (rules in ``keel.live.emulator.venue_view``).
This engine shares no code with the backtest's fill model, so the gate compares two implementations.

Rules (Binance spot semantics where they apply):

- MARKET walks the opposite side of the book as taker; each level hit is one TRADE with its own trade id.
  Liquidity it takes is removed from the book (and, where the depth book has the level, streamed as a
  depth diff by the venue). Whatever the book cannot fill EXPIRES.
- LIMIT GTC takes what crosses at submission (taker, at book prices up to the limit) and rests the rest;
  IOC expires the rest; FOK fills completely at submission or expires without fills.
- LIMIT_MAKER (post-only) is rejected with -2010 "Order would immediately match and take." if it crosses.
- A resting order fills as MAKER, at its own price, when a replayed trade prints strictly THROUGH it (a buy
  below its price, a sell above): a print through means the level was used up. A print AT its price by the
  opposite aggressor first consumes the visible queue ahead of the order (``QueuePosition``: the book's size
  at its price when it arrived, capped whenever the level shrinks below it); only the quantity beyond the
  queue fills it. Own orders resting at one price share a print in arrival order. A resting order fills as
  TAKER, at book prices, when the book (depth or bookTicker) moves to or through it.
- Balances: a LIMIT locks its notional (buy, quote asset) or quantity (sell, base asset) at NEW; a MARKET
  locks what it needs for the walk. Commission is charged in the asset received (buy: base, sell: quote)
  at the maker or taker rate (plus the ``extra_fee_bps`` fault, if set).
- Own orders are not shown in the public book (the replayed market does not know about them).
"""

import copy
import itertools
from dataclasses import dataclass
from decimal import ROUND_CEILING
from decimal import ROUND_FLOOR
from decimal import ROUND_HALF_UP
from decimal import Decimal

from keel.live.emulator.balances import InsufficientBalance
from keel.live.emulator.balances import SpotBalances
from keel.live.emulator.book import BUY
from keel.live.emulator.book import SELL
from keel.live.emulator.book import L2Book
from keel.live.emulator.faults import Faults
from keel.live.emulator.feed import QuotePrint
from keel.live.emulator.feed import TradePrint
from keel.live.emulator.symbols import SymbolSpec
from keel.live.emulator.venue_view import QueuePosition
from keel.live.emulator.venue_view import VenueView

POST_ONLY_REJECT_MSG = "Order would immediately match and take."
INSUFFICIENT_BALANCE_MSG = "Account has insufficient balance for requested action."
UNKNOWN_ORDER_MSG = "Unknown order sent."
_COMMISSION_QUANTUM = Decimal("0.00000001")
_ZERO = Decimal(0)


class VenueRejection(Exception):
    """A request the venue refuses: Binance error ``code`` (a ``BinanceErrorCode`` member) and ``msg``."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status


@dataclass(frozen=True)
class NewOrder:
    """
    A new-order request as the venue received it.

    Parameters
    ----------
    symbol : str
        Venue symbol.
    side : str
        ``BUY`` or ``SELL``.
    order_type : str
        ``LIMIT``, ``MARKET`` or ``LIMIT_MAKER``.
    client_order_id : str
        The client's id for the order (``newClientOrderId``).
    quantity : Decimal, optional
        Base quantity (required except for a MARKET with ``quote_order_qty``).
    price : Decimal, optional
        Limit price (LIMIT and LIMIT_MAKER).
    time_in_force : str, optional
        ``GTC``, ``IOC`` or ``FOK`` (LIMIT only).
    quote_order_qty : Decimal, optional
        Quote amount to spend or receive (MARKET only).
    """

    symbol: str
    side: str
    order_type: str
    client_order_id: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str | None = None
    quote_order_qty: Decimal | None = None


@dataclass
class Order:
    """
    An order at the venue, as its reports describe it (mutable while open).

    ``queue`` is the visible quantity ahead of it at its price while it rests (None before it rests).
    """

    order_id: int
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    quote_order_qty: Decimal
    status: str
    created_ms: int
    updated_ms: int
    working_ms: int = -1
    executed_qty: Decimal = _ZERO
    cumulative_quote_qty: Decimal = _ZERO
    lock_asset: str = ""
    locked: Decimal = _ZERO
    counted_for_drop: bool = False
    queue: QueuePosition | None = None

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.quantity - self.executed_qty

    @property
    def is_open(self) -> bool:
        """Whether the order rests on the book."""
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True)
class Fill:
    """One of the account's trades (``myTrades`` row, ``executionReport`` TRADE)."""

    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    quantity: Decimal
    quote_quantity: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_maker: bool


@dataclass(frozen=True)
class ExecutionEvent:
    """
    One ``executionReport``: the order as it stood right after the change, and the change.

    ``cancel_client_order_id`` is the id of the cancel request (``c`` of a CANCELED report; the order's
    own id then goes in ``C``).
    """

    order: Order
    execution_type: str
    time_ms: int
    fill: Fill | None = None
    cancel_client_order_id: str = ""


@dataclass(frozen=True)
class BalanceEvent:
    """One ``outboundAccountPosition``: (asset, free, locked) of the assets that changed."""

    time_ms: int
    balances: tuple[tuple[str, Decimal, Decimal], ...]


@dataclass(frozen=True)
class BookLevelEvent:
    """The venue's book level changed because an own order took liquidity (streamed as a depth diff)."""

    symbol: str
    side: str
    price: Decimal
    quantity: Decimal


VenueEvent = ExecutionEvent | BalanceEvent | BookLevelEvent


class MatchingEngine:
    """
    Own orders, balances and fills of the emulated account, matched against the venue's books.

    Every method that changes state returns the venue events it caused, in venue order (NEW before TRADE,
    each balance change right after the report that caused it).

    Parameters
    ----------
    specs : dict[str, SymbolSpec]
        Listed symbols by venue symbol.
    books : dict[str, L2Book]
        The depth books the venue streams, by venue symbol (shared with the replay, which applies the depth
        diffs to them). The engine matches against a ``VenueView`` over each (``views``), which the replay
        keeps current through ``on_depth_changed``, ``on_quote`` and ``on_trade``.
    balances : SpotBalances
        The account's balances.
    faults : Faults
        Fault knobs, read at each fill (they may change at runtime).
    first_order_id : int
        First venue order id to hand out.
    """

    def __init__(
        self,
        specs: dict[str, SymbolSpec],
        books: dict[str, L2Book],
        balances: SpotBalances,
        faults: Faults,
        first_order_id: int = 1_000_001,
    ) -> None:
        self.specs = specs
        self.books = books
        self.views = {symbol: VenueView(book) for symbol, book in books.items()}
        self.balances = balances
        self.faults = faults
        self._order_ids = itertools.count(first_order_id)
        self._trade_ids = itertools.count(1)
        self._cancel_ids = itertools.count(1)
        self._orders: dict[int, Order] = {}
        self._fills: list[Fill] = []
        self._orders_that_would_fill = 0

    # -- queries ---------------------------------------------------------------------------------------------

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """Return the open orders (of ``symbol`` if given), oldest first."""
        return [o for o in self._orders.values() if o.is_open and (symbol is None or o.symbol == symbol)]

    def orders(self, symbol: str) -> list[Order]:
        """Return every order of ``symbol`` the account ever placed, oldest first."""
        return [o for o in self._orders.values() if o.symbol == symbol]

    def fills(self, symbol: str) -> list[Fill]:
        """Return the account's trades in ``symbol``, oldest first."""
        return [f for f in self._fills if f.symbol == symbol]

    def find_order(self, symbol: str, order_id: int | None, client_order_id: str | None) -> Order | None:
        """Return the order with ``order_id`` (preferred) or ``client_order_id`` in ``symbol``, or None."""
        if order_id is not None:
            order = self._orders.get(order_id)
            if order is None or order.symbol != symbol:
                return None
            if client_order_id and order.client_order_id != client_order_id:
                return None
            return order
        if client_order_id:
            # The newest order wins: client ids may be reused once an order is closed.
            for order in reversed(self._orders.values()):
                if order.symbol == symbol and order.client_order_id == client_order_id:
                    return order
        return None

    # -- requests --------------------------------------------------------------------------------------------

    def submit(self, request: NewOrder, now_ms: int) -> tuple[Order, list[VenueEvent]]:
        """
        Place ``request``; return the order and the events it caused.

        Raises
        ------
        VenueRejection
            When a filter, the balance or the post-only rule refuses it (nothing changes then).
        """
        spec = self._spec(request.symbol)
        self._validate(request, spec)
        view = self.views[request.symbol]
        if request.order_type == "LIMIT_MAKER" and any(True for _ in view.levels_for_taker(request.side, request.price)):
            raise VenueRejection(-2010, POST_ONLY_REJECT_MSG)
        plan = self._taker_plan(request, spec, view)
        lock_asset, lock_amount = self._reservation(request, spec, plan)
        try:
            self.balances.lock(lock_asset, lock_amount)
        except InsufficientBalance:
            raise VenueRejection(-2010, INSUFFICIENT_BALANCE_MSG) from None
        order = Order(
            order_id=next(self._order_ids),
            client_order_id=request.client_order_id,
            symbol=request.symbol,
            side=request.side,
            order_type=request.order_type,
            time_in_force=request.time_in_force or "GTC",
            quantity=request.quantity if request.quantity is not None else _ZERO,
            price=request.price if request.price is not None else _ZERO,
            quote_order_qty=request.quote_order_qty or _ZERO,
            status="NEW",
            created_ms=now_ms,
            updated_ms=now_ms,
            working_ms=now_ms,
            lock_asset=lock_asset,
            locked=lock_amount,
        )
        self._orders[order.order_id] = order
        events: list[VenueEvent] = [ExecutionEvent(copy.copy(order), "NEW", now_ms)]
        self._balance_event(events, now_ms)
        if request.quote_order_qty is not None:
            # A quote-quantity order's base quantity is what its walk buys or sells.
            order.quantity = sum((quantity for _, quantity in plan), _ZERO)
        if order.time_in_force == "FOK" and sum((q for _, q in plan), _ZERO) < order.quantity:
            self._close(order, "EXPIRED", now_ms, events)
            return order, events
        if plan and self._drops_this_fill(order):
            self._close(order, "EXPIRED", now_ms, events)
            return order, events
        for price, quantity in plan:
            self._take_level(order, spec, view, price, quantity, now_ms, events)
        if order.status != "FILLED" and (order.order_type == "MARKET" or order.time_in_force in ("IOC", "FOK")):
            self._close(order, "EXPIRED", now_ms, events)
        if order.is_open:
            order.queue = QueuePosition(view.size_at(order.side, order.price))
        return order, events

    def cancel(self, symbol: str, order_id: int | None, client_order_id: str | None, now_ms: int) -> tuple[Order, list[VenueEvent]]:
        """
        Cancel an open order found by ``order_id`` or ``client_order_id``; return it and the events.

        Raises
        ------
        VenueRejection
            -2011 when no open order matches.
        """
        self._spec(symbol)
        order = self.find_order(symbol, order_id, client_order_id)
        if order is None or not order.is_open:
            raise VenueRejection(-2011, UNKNOWN_ORDER_MSG)
        events: list[VenueEvent] = []
        self._close(order, "CANCELED", now_ms, events, cancel_client_order_id=f"cancel{next(self._cancel_ids)}")
        return order, events

    def cancel_all(self, symbol: str, now_ms: int) -> tuple[list[Order], list[VenueEvent]]:
        """Cancel every open order of ``symbol``; return them and the events."""
        self._spec(symbol)
        orders = self.open_orders(symbol)
        events: list[VenueEvent] = []
        for order in orders:
            self._close(order, "CANCELED", now_ms, events, cancel_client_order_id=f"cancel{next(self._cancel_ids)}")
        return orders, events

    # -- market events ---------------------------------------------------------------------------------------

    def on_trade(self, trade: TradePrint, now_ms: int) -> list[VenueEvent]:
        """
        Take a replayed trade print into the book; fill, as maker at their own price, the resting orders it
        went through and those whose queue it used up.
        """
        events: list[VenueEvent] = []
        spec = self.specs[trade.symbol]
        view = self.views[trade.symbol]
        view.on_trade(trade)
        # The side whose resting orders the aggressor hit (``m``: the buyer was the maker).
        hit_side = BUY if trade.buyer_is_maker else SELL
        at_price_left = trade.quantity
        for order in self.open_orders(trade.symbol):
            through = trade.price < order.price if order.side == BUY else trade.price > order.price
            if through:
                quantity = order.remaining
            elif trade.price == order.price and order.side == hit_side and order.queue is not None:
                quantity = min(order.remaining, order.queue.on_trade_at_price(trade.quantity), at_price_left)
                at_price_left -= quantity
                if quantity <= 0:
                    continue
            else:
                continue
            if self._drops_this_fill(order):
                self._close(order, "EXPIRED", now_ms, events)
                continue
            self._fill(order, spec, order.price, quantity, is_maker=True, now_ms=now_ms, events=events)
        self._cap_queues(view, trade.symbol)
        return events

    def on_quote(self, quote: QuotePrint, now_ms: int) -> list[VenueEvent]:
        """Take a replayed bookTicker into the book; fill, as taker, the resting orders the book now crosses."""
        self.views[quote.symbol].on_quote(quote)
        return self._on_book_moved(quote.symbol, now_ms)

    def on_depth_changed(self, symbol: str, ts_init: int, now_ms: int) -> list[VenueEvent]:
        """
        Record that a replayed depth change as of ``ts_init`` was applied to the depth book of ``symbol``;
        fill, as taker, the resting orders the book now crosses.
        """
        self.views[symbol].on_depth(ts_init)
        return self._on_book_moved(symbol, now_ms)

    # -- internals -------------------------------------------------------------------------------------------

    def _spec(self, symbol: str) -> SymbolSpec:
        spec = self.specs.get(symbol)
        if spec is None:
            raise VenueRejection(-1121, "Invalid symbol.")
        return spec

    def _validate(self, request: NewOrder, spec: SymbolSpec) -> None:
        if request.side not in (BUY, SELL):
            raise VenueRejection(-1117, "Invalid side.")
        if request.order_type not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise VenueRejection(-1116, f"Invalid orderType: the emulator supports LIMIT, LIMIT_MAKER and MARKET, got {request.order_type}.")
        if request.order_type == "LIMIT" and request.time_in_force not in ("GTC", "IOC", "FOK"):
            raise VenueRejection(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
        if request.order_type != "LIMIT" and request.time_in_force is not None:
            raise VenueRejection(-1106, "Parameter 'timeInForce' sent when not required.")
        if request.order_type != "MARKET" and request.price is None:
            raise VenueRejection(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        if request.order_type == "MARKET" and request.price is not None:
            raise VenueRejection(-1106, "Parameter 'price' sent when not required.")
        if (request.quantity is None) == (request.quote_order_qty is None) or (request.quote_order_qty is not None and request.order_type != "MARKET"):
            raise VenueRejection(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        if any(o.client_order_id == request.client_order_id for o in self.open_orders(request.symbol)):
            raise VenueRejection(-2010, "Duplicate order sent.")
        if request.price is not None and (
            request.price < spec.min_price or (spec.max_price > 0 and request.price > spec.max_price) or request.price % spec.tick_size != 0
        ):
            raise VenueRejection(-1013, "Filter failure: PRICE_FILTER")
        if request.quantity is not None:
            quantity = request.quantity
            if quantity < spec.min_qty or (spec.max_qty > 0 and quantity > spec.max_qty) or (quantity - spec.min_qty) % spec.step_size != 0:
                raise VenueRejection(-1013, "Filter failure: LOT_SIZE")
            if request.order_type == "MARKET" and spec.market_max_qty > 0 and quantity > spec.market_max_qty:
                raise VenueRejection(-1013, "Filter failure: MARKET_LOT_SIZE")
        if spec.min_notional > 0 and _notional(request, self.views[request.symbol]) < spec.min_notional:
            raise VenueRejection(-1013, f"Filter failure: {spec.notional_filter}")
        if spec.max_num_orders and len(self.open_orders(request.symbol)) >= spec.max_num_orders:
            raise VenueRejection(-1013, "Filter failure: MAX_NUM_ORDERS")

    def _on_book_moved(self, symbol: str, now_ms: int) -> list[VenueEvent]:
        """Fill, as taker at book prices, the resting orders the book has moved to or through; cap the queues."""
        events: list[VenueEvent] = []
        spec = self.specs[symbol]
        view = self.views[symbol]
        for order in sorted(self.open_orders(symbol), key=lambda o: (-o.price if o.side == BUY else o.price, o.order_id)):
            plan = _walk(view, order.side, order.price, order.remaining)
            if not plan:
                continue
            if self._drops_this_fill(order):
                self._close(order, "EXPIRED", now_ms, events)
                continue
            for price, quantity in plan:
                self._take_level(order, spec, view, price, quantity, now_ms, events)
        self._cap_queues(view, symbol)
        return events

    def _cap_queues(self, view: VenueView, symbol: str) -> None:
        for order in self.open_orders(symbol):
            if order.queue is not None:
                order.queue.on_level_size(view.size_at(order.side, order.price))

    def _taker_plan(self, request: NewOrder, spec: SymbolSpec, view: VenueView) -> list[tuple[Decimal, Decimal]]:
        if request.order_type == "LIMIT_MAKER":
            return []
        limit = request.price if request.order_type == "LIMIT" else None
        if request.quote_order_qty is None:
            return _walk(view, request.side, limit, request.quantity or _ZERO)
        plan: list[tuple[Decimal, Decimal]] = []
        budget = request.quote_order_qty
        for price, available in view.levels_for_taker(request.side, None):
            fill_price = self._slipped(price, request.side, spec)
            quantity = min(available, _floor_to(budget / fill_price, spec.step_size))
            if quantity <= 0:
                break
            plan.append((price, quantity))
            budget -= fill_price * quantity
        return plan

    def _reservation(self, request: NewOrder, spec: SymbolSpec, plan: list[tuple[Decimal, Decimal]]) -> tuple[str, Decimal]:
        if request.side == SELL:
            quantity = request.quantity if request.quantity is not None else sum((q for _, q in plan), _ZERO)
            return spec.base_asset, quantity
        if request.order_type == "MARKET":
            if request.quote_order_qty is not None:
                return spec.quote_asset, request.quote_order_qty
            return spec.quote_asset, sum((self._slipped(p, BUY, spec) * q for p, q in plan), _ZERO)
        # A resting buy may later fill above its limit only through injected slippage; that excess is
        # paid from the free balance at fill time.
        return spec.quote_asset, (request.price or _ZERO) * (request.quantity or _ZERO)

    def _drops_this_fill(self, order: Order) -> bool:
        """Count ``order`` the first time it would fill; True when the drop fault makes the venue miss it."""
        if order.counted_for_drop:
            return False
        order.counted_for_drop = True
        self._orders_that_would_fill += 1
        every = self.faults.drop_fill_every
        return every > 0 and self._orders_that_would_fill % every == 0

    def _take_level(self, order: Order, spec: SymbolSpec, view: VenueView, price: Decimal, quantity: Decimal, now_ms: int, events: list[VenueEvent]) -> None:
        maker_side = SELL if order.side == BUY else BUY
        depth_left = view.take(maker_side, price, quantity)
        if depth_left is not None:
            events.append(BookLevelEvent(order.symbol, maker_side, price, depth_left))
        self._fill(order, spec, price, quantity, is_maker=False, now_ms=now_ms, events=events)

    def _fill(self, order: Order, spec: SymbolSpec, price: Decimal, quantity: Decimal, *, is_maker: bool, now_ms: int, events: list[VenueEvent]) -> None:
        """Book one fill of ``quantity`` at ``price`` (before injected slippage, which is applied here)."""
        price = self._slipped(price, order.side, spec)
        quote_quantity = price * quantity
        # The fee-mismatch fault adds its basis points to the listed rate, so it is charged and rounded with it.
        rate = (spec.maker_fee if is_maker else spec.taker_fee) + Decimal(repr(self.faults.extra_fee_bps)) / Decimal(10_000)
        if order.side == BUY:
            self._pay(order, quote_quantity)
            commission = (quantity * rate).quantize(_COMMISSION_QUANTUM, ROUND_HALF_UP)
            commission_asset = spec.base_asset
            self.balances.credit(spec.base_asset, quantity - commission)
        else:
            self._pay(order, quantity)
            commission = (quote_quantity * rate).quantize(_COMMISSION_QUANTUM, ROUND_HALF_UP)
            commission_asset = spec.quote_asset
            self.balances.credit(spec.quote_asset, quote_quantity - commission)
        order.executed_qty += quantity
        order.cumulative_quote_qty += quote_quantity
        order.updated_ms = now_ms
        order.status = "FILLED" if order.executed_qty >= order.quantity else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._release(order)
        fill = Fill(
            trade_id=next(self._trade_ids),
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            quantity=quantity,
            quote_quantity=quote_quantity,
            commission=commission,
            commission_asset=commission_asset,
            time_ms=now_ms,
            is_maker=is_maker,
        )
        self._fills.append(fill)
        events.append(ExecutionEvent(copy.copy(order), "TRADE", now_ms, fill=fill))
        self._balance_event(events, now_ms)

    def _pay(self, order: Order, amount: Decimal) -> None:
        from_lock = min(amount, order.locked)
        if from_lock > 0:
            self.balances.spend_locked(order.lock_asset, from_lock)
            order.locked -= from_lock
        if amount > from_lock:
            self.balances.spend_free(order.lock_asset, amount - from_lock)

    def _release(self, order: Order) -> None:
        if order.locked > 0:
            self.balances.unlock(order.lock_asset, order.locked)
            order.locked = _ZERO

    def _close(self, order: Order, status: str, now_ms: int, events: list[VenueEvent], cancel_client_order_id: str = "") -> None:
        self._release(order)
        order.status = status
        order.updated_ms = now_ms
        events.append(ExecutionEvent(copy.copy(order), status, now_ms, cancel_client_order_id=cancel_client_order_id))
        self._balance_event(events, now_ms)

    def _balance_event(self, events: list[VenueEvent], now_ms: int) -> None:
        touched = self.balances.take_touched()
        if touched:
            events.append(BalanceEvent(now_ms, tuple((a, self.balances.free(a), self.balances.locked(a)) for a in touched)))

    def _slipped(self, price: Decimal, side: str, spec: SymbolSpec) -> Decimal:
        bps = self.faults.slippage_bps
        if bps <= 0:
            return price
        factor = Decimal(1) + Decimal(repr(bps)) / Decimal(10_000) * (1 if side == BUY else -1)
        rounding = ROUND_CEILING if side == BUY else ROUND_FLOOR
        return (price * factor / spec.tick_size).to_integral_value(rounding) * spec.tick_size


def _walk(view: VenueView, side: str, limit: Decimal | None, quantity: Decimal) -> list[tuple[Decimal, Decimal]]:
    """Return the (price, quantity) a taker on ``side`` would take, best level first, up to ``quantity``."""
    plan: list[tuple[Decimal, Decimal]] = []
    left = quantity
    for price, available in view.levels_for_taker(side, limit):
        if left <= 0:
            break
        take = min(available, left)
        plan.append((price, take))
        left -= take
    return plan


def _notional(request: NewOrder, view: VenueView) -> Decimal:
    if request.quote_order_qty is not None:
        return request.quote_order_qty
    quantity = request.quantity or _ZERO
    if request.price is not None:
        return request.price * quantity
    # A market order is measured at the price it would trade at first, like the venue's reference price.
    best = view.best(SELL if request.side == BUY else BUY)
    return best[0] * quantity if best else Decimal("Infinity")


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(ROUND_FLOOR) * step
