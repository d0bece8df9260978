"""One node assembly for backtest and live: the components a node runs for a variant.

The backtest runner and the live node both build their node's trader from :func:`assemble`, so what runs around
a strategy is the same in both modes: the variant's strategy, the actors every node of that mode must have, the
variant's own actors, and the close-out controller. Components are named by import path (nautilus's
``Importable*Config``), so this module imports none of them and the kernel builds them the same way in a
``BacktestNode`` and a ``TradingNode``.

Actors every node has, by mode:

========  =================================================================================================
mode      actors
========  =================================================================================================
backtest  (none yet: the runner reads fills, orders and positions from the engine's cache)
live      ``keel.live.recorder:SessionRecorder``: market data, order events and fills into the session folder
========  =================================================================================================

The risk core joins both rows (the risk issue): a kill path that never ran in a backtest does not exist.
"""

from typing import Literal

import msgspec
from nautilus_trader.common.config import ImportableActorConfig
from nautilus_trader.common.config import resolve_path
from nautilus_trader.trading.config import ImportableControllerConfig
from nautilus_trader.trading.config import ImportableStrategyConfig

from keel.variant import Variant

Mode = Literal["backtest", "live"]

RECORDER_PATH = "keel.live.recorder:SessionRecorder"
RECORDER_CONFIG_PATH = "keel.live.recorder:SessionRecorderConfig"
VARIANT_ID_FIELD = "variant_id"


class NodeComponents(msgspec.Struct, frozen=True, kw_only=True):
    """
    What a node's trader runs.

    Parameters
    ----------
    strategies : list[ImportableStrategyConfig]
        The variant's strategy; a config with a ``variant_id`` field (``keel.strategies.base``) gets the variant's
        name there, so every order it sends is tagged with its variant.
    actors : list[ImportableActorConfig]
        The actors every node of the mode has, then the variant's own.
    controller : ImportableControllerConfig
        The close-out controller.
    """

    strategies: list[ImportableStrategyConfig]
    actors: list[ImportableActorConfig]
    controller: ImportableControllerConfig


def assemble(
    variant: Variant,
    mode: Mode,
    stop_at_ns: int | None = None,
    session_dir: str | None = None,
    sweep_after_ns: int | None = None,
) -> NodeComponents:
    """
    Return the components of a node running ``variant`` in ``mode``.

    Parameters
    ----------
    variant : Variant
        The variant; its strategy section is used unchanged.
    mode : {"backtest", "live"}
        Which kind of node.
    stop_at_ns : int, optional
        When the close-out controller stops the strategies (a backtest: shortly before the data ends).
    session_dir : str, optional
        The live session folder the recorder writes to; required for ``live``.
    sweep_after_ns : int, optional
        When, after ``stop_at_ns``, the controller flattens what orders in flight at the stop left open.

    Raises
    ------
    ValueError
        For ``live`` without a ``session_dir``.
    """
    required: list[ImportableActorConfig] = []
    if mode == "live":
        if session_dir is None:
            raise ValueError("a live node needs a session folder for its recorder")
        required.append(
            ImportableActorConfig(
                actor_path=RECORDER_PATH,
                config_path=RECORDER_CONFIG_PATH,
                config={"session_dir": session_dir, "instrument_ids": variant.instrument_ids},
            ),
        )
    return NodeComponents(
        strategies=[_with_variant_id(variant)],
        actors=[*required, *variant.actors],
        controller=ImportableControllerConfig(
            controller_path="keel.close_out:CloseOutController",
            config_path="keel.close_out:CloseOutControllerConfig",
            config={"stop_at_ns": stop_at_ns, "sweep_after_ns": sweep_after_ns},
        ),
    )


def _with_variant_id(variant: Variant) -> ImportableStrategyConfig:
    config_class = resolve_path(variant.strategy.config_path)
    if VARIANT_ID_FIELD not in getattr(config_class, "__struct_fields__", ()) or variant.strategy.config.get(VARIANT_ID_FIELD):
        return variant.strategy
    return ImportableStrategyConfig(
        strategy_path=variant.strategy.strategy_path,
        config_path=variant.strategy.config_path,
        config={**variant.strategy.config, VARIANT_ID_FIELD: variant.name},
    )
