"""`keel.data.plot`: one offline HTML page with coverage, trade prices and spreads; downsampling keeps the extremes."""

import re
from pathlib import Path

import numpy as np
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from keel.data.plot import catalog_figure
from keel.data.plot import plot_catalog

BTCUSDT = "BTCUSDT.BINANCE"
ETHUSDT = "ETHUSDT.BINANCE"
INSTRUMENTS = (BTCUSDT, ETHUSDT)
FOLDER_TYPES = ("order_book_deltas", "quote_tick", "trade_tick")


def _traces(figure) -> dict:
    return {trace.name: trace for trace in figure.data}


def test_html_is_self_contained_with_one_trace_per_instrument_and_series(sample_catalog: Path, tmp_path: Path) -> None:
    output = plot_catalog(sample_catalog, tmp_path / "report" / "catalog.html", max_points=500)
    html = output.read_text()

    expected = {f"{instrument} {data_type}" for instrument in INSTRUMENTS for data_type in FOLDER_TYPES} | {
        f"{instrument} {series}" for instrument in INSTRUMENTS for series in ("trade price", "spread bps")
    }
    names = re.findall(r'"name":"([^"]*)"', html)
    assert output == tmp_path / "report" / "catalog.html"
    assert sorted(names) == sorted(expected)  # each exactly once; no "gaps" trace: the sample has none
    assert "plotly.js v" in html  # the library is embedded ...
    assert '<script src="https://cdn.plot.ly' not in html  # ... not fetched: the machines are offline


def test_downsampled_prices_and_spreads_keep_the_true_extremes(sample_catalog: Path) -> None:
    catalog = ParquetDataCatalog(str(sample_catalog))
    max_points = 300

    traces = _traces(catalog_figure(sample_catalog, max_points=max_points))

    for instrument_id in INSTRUMENTS:
        prices = [float(tick.price.as_decimal()) for tick in catalog.trade_ticks(instrument_ids=[instrument_id])]
        quotes = catalog.quote_ticks(instrument_ids=[instrument_id])
        bids = np.array([float(quote.bid_price.as_decimal()) for quote in quotes])
        asks = np.array([float(quote.ask_price.as_decimal()) for quote in quotes])
        spreads = (asks - bids) / ((asks + bids) / 2) * 10_000
        price_trace = traces[f"{instrument_id} trade price"]
        spread_trace = traces[f"{instrument_id} spread bps"]
        assert len(prices) > 10 * max_points
        assert len(price_trace.y) <= max_points
        assert (np.nanmin(price_trace.y), np.nanmax(price_trace.y)) == (min(prices), max(prices))
        assert len(spread_trace.y) <= max_points
        assert np.nanmin(spread_trace.y) == spreads.min()
        assert np.isclose(np.nanmax(spread_trace.y), spreads.max(), rtol=1e-12)


def test_time_window_and_instrument_filter(sample_catalog: Path) -> None:
    ticks = ParquetDataCatalog(str(sample_catalog)).trade_ticks(instrument_ids=[BTCUSDT])
    start_ns, end_ns = ticks[1000].ts_init, ticks[2000].ts_init
    window_prices = [float(tick.price.as_decimal()) for tick in ticks[1000:2001]]

    traces = _traces(catalog_figure(sample_catalog, [BTCUSDT], start_ns, end_ns, max_points=100_000))

    assert set(traces) == {f"{BTCUSDT} {data_type}" for data_type in FOLDER_TYPES} | {f"{BTCUSDT} trade price", f"{BTCUSDT} spread bps"}
    price_trace = traces[f"{BTCUSDT} trade price"]
    assert list(price_trace.y) == window_prices  # under max_points nothing is dropped
    assert (price_trace.x[0], price_trace.x[-1]) == (np.datetime64(start_ns, "ns"), np.datetime64(end_ns, "ns"))
    coverage = traces[f"{BTCUSDT} trade_tick"]
    # Plotly keeps interval ends as datetime.datetime: microseconds, enough for a timeline.
    assert np.datetime64(coverage.x[0], "us") == np.datetime64(start_ns // 1000, "us")
    assert np.datetime64(coverage.x[1], "us") == np.datetime64(end_ns // 1000, "us")
