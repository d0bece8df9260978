"""Queue models and the print rule on hand-built numbers (hftbacktest's formulas worked by hand)."""

import pytest
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.enums import OrderSide

from keel.backtests.queue_models import NoQueue
from keel.backtests.queue_models import PowerProbQueue
from keel.backtests.queue_models import RiskAverseQueue
from keel.backtests.queue_models import queue_model_for
from keel.backtests.queue_tracker import RestingOrder
from keel.backtests.queue_tracker import apply_print


def test_risk_averse_moves_up_only_when_the_level_shrinks_below_the_size_ahead() -> None:
    model = RiskAverseQueue()
    assert model.ahead_at_arrival(7.0) == 7.0
    assert model.ahead_after_change(5.0, 8.0, 6.0) == 5.0  # a cancel behind
    assert model.ahead_after_change(5.0, 8.0, 3.0) == 3.0  # at most 3 can be ahead now
    assert model.ahead_after_change(5.0, 8.0, 10.0) == 5.0  # an addition joins the back


@pytest.mark.parametrize(
    ("power", "ahead", "previous", "new", "expected"),
    [
        # p(back) = 6/8: 2 - 0.25 * 4 + min(6 - 3, 0) = 1
        (1.0, 2.0, 8.0, 4.0, 1.0),
        # p(back) = 2/8: 6 - 0.75 * 4 + min(2 - 1, 0) = 3
        (1.0, 6.0, 8.0, 4.0, 3.0),
        # front 1, back 2, n = 3: p(back) = 8 / (1 + 8); 1 - (1/9) * 2 + min(2 - (16/9), 0) = 7/9
        (3.0, 1.0, 3.0, 1.0, 7 / 9),
        # the back cannot absorb its share: 2 - 0.5 * 6 + min(2 - 3, 0) < 0, floored at 0
        (1.0, 2.0, 4.0, 0.0, 0.0),
        # an addition leaves the front where it was
        (3.0, 2.0, 4.0, 9.0, 2.0),
    ],
)
def test_power_prob_splits_cancels_by_hftbacktest_rule(power: float, ahead: float, previous: float, new: float, expected: float) -> None:
    assert PowerProbQueue(power).ahead_after_change(ahead, previous, new) == pytest.approx(expected)


def test_power_prob_with_nothing_behind_takes_every_cancel_from_the_front() -> None:
    assert PowerProbQueue(3.0).ahead_after_change(4.0, 4.0, 1.0) == pytest.approx(1.0)


def test_no_queue_is_always_first() -> None:
    assert NoQueue().ahead_at_arrival(5.0) == 0.0
    assert NoQueue().ahead_after_change(3.0, 5.0, 1.0) == 0.0


def test_unknown_queue_model_is_refused() -> None:
    with pytest.raises(ValueError, match="queue_model"):
        queue_model_for("fifo", 1.0)
    with pytest.raises(ValueError, match="power"):
        PowerProbQueue(0.0)


def _buy_at_100(ahead: float) -> RestingOrder:
    return RestingOrder(side=OrderSide.BUY, price=100.0, ahead=ahead, level=ahead)


def test_prints_at_the_price_use_up_the_queue_before_the_order_fills() -> None:
    order = _buy_at_100(ahead=3.0)

    apply_print(order, 100.0, 2.0, AggressorSide.SELLER, leaves=1.0)
    assert (order.ahead, order.fillable) == (1.0, 0.0)

    apply_print(order, 100.0, 1.5, AggressorSide.SELLER, leaves=1.0)
    assert (order.ahead, order.fillable) == (0.0, 0.5)
    assert order.traded == 3.5


def test_fillable_never_exceeds_what_the_order_has_left() -> None:
    order = _buy_at_100(ahead=0.0)
    apply_print(order, 100.0, 5.0, AggressorSide.SELLER, leaves=1.0)
    assert order.fillable == 1.0


def test_prints_that_do_not_reach_the_order_change_nothing() -> None:
    order = _buy_at_100(ahead=2.0)
    apply_print(order, 100.0, 5.0, AggressorSide.BUYER, leaves=1.0)  # a buyer lifts asks
    apply_print(order, 100.5, 5.0, AggressorSide.SELLER, leaves=1.0)  # a seller above the bid
    assert (order.ahead, order.fillable, order.traded) == (2.0, 0.0, 0.0)


def test_a_print_through_the_price_sweeps_the_whole_level() -> None:
    order = _buy_at_100(ahead=50.0)
    apply_print(order, 99.9, 0.1, AggressorSide.SELLER, leaves=1.0)
    assert (order.ahead, order.fillable) == (0.0, 1.0)


def test_sell_side_mirrors_buy_side() -> None:
    order = RestingOrder(side=OrderSide.SELL, price=100.0, ahead=1.0, level=1.0)
    apply_print(order, 100.0, 1.5, AggressorSide.BUYER, leaves=2.0)
    assert (order.ahead, order.fillable) == (0.0, 0.5)
    apply_print(order, 100.1, 0.01, AggressorSide.BUYER, leaves=2.0)
    assert order.fillable == 2.0
