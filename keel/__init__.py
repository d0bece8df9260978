"""Keel: research-first backtest and live trading on nautilus_trader.

The package maps the repository's top-level folders to ``keel.<folder>`` (see ``pyproject.toml``):
``keel.data``, ``keel.strategies``, ``keel.backtests``, ``keel.live``, ``keel.validation``, ``keel.risk``.
"""
