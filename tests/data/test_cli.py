"""`keel data ingest` and `keel data ls` on the real sample."""

from pathlib import Path

from typer.testing import CliRunner

from keel.cli import app
from keel.data.ingest import sample_recordings
from keel.settings import SAMPLE_DIR


def test_ingest_then_list(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    runner = CliRunner()

    ingest = runner.invoke(app, ["data", "ingest", "binance-spot", *map(str, sample_recordings()), "--catalog", str(catalog)])
    again = runner.invoke(app, ["data", "ingest", "binance-spot", *map(str, sample_recordings()), "--catalog", str(catalog)])
    listing = runner.invoke(app, ["data", "ls", "--catalog", str(catalog)])

    assert ingest.exit_code == 0, ingest.output
    assert again.exit_code == 0 and "unchanged" in again.output
    assert listing.exit_code == 0, listing.output
    rows = {tuple(line.split()[:2]): line.split() for line in listing.output.splitlines()[1:] if line.startswith(("BTCUSDT", "ETHUSDT"))}
    assert rows[("BTCUSDT.BINANCE", "trade_tick")][4] == "9757"
    assert rows[("ETHUSDT.BINANCE", "trade_tick")][4] == "6106"
    assert ("BTCUSDT.BINANCE", "order_book_deltas") in rows


def test_bad_file_exits_2_and_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gz"

    result = CliRunner().invoke(app, ["data", "ingest", "binance-spot", str(missing), "--catalog", str(tmp_path / "catalog")])

    assert result.exit_code == 2
    assert not (tmp_path / "catalog").exists()


def _catalog_counts(catalog: Path) -> dict[tuple[str, str], int]:
    from keel.data.inventory import catalog_inventory

    return {(row.identifier, row.data_type): row.rows for row in catalog_inventory(catalog)}


def test_every_shipped_source_ingests_through_the_cli(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    runner = CliRunner()
    commands = [
        ["binance-usdm", *map(str, sorted((SAMPLE_DIR / "binance_usdm").glob("*.gz")))],
        ["okx", str(SAMPLE_DIR / "okx" / "OKX.ws.1.0.gz")],
        ["binance-dump", "klines", str(SAMPLE_DIR / "binance_dumps" / "ETHUSDT-1m-2022-08-14.zip")],
        ["binance-dump", "klines", str(SAMPLE_DIR / "binance_dumps" / "BTCUSDT-1m-2022-09-05.zip"), "--market", "usdm"],
        ["bars", str(SAMPLE_DIR / "bars" / "BTC_USDT_USDT-1m-futures.feather"), "--instrument", "BTCUSDT-PERP.BINANCE"],
        ["funding", str(SAMPLE_DIR / "bars" / "BTC_USDT_USDT-8h-funding_rate.feather")],
        ["instruments", "okx", str(SAMPLE_DIR / "okx" / "instruments.json")],
    ]

    for command in commands:
        result = runner.invoke(app, ["data", "ingest", *command, "--catalog", str(catalog)])
        assert result.exit_code == 0, (command, result.output)

    counts = _catalog_counts(catalog)
    assert counts[("BTCUSDT-PERP.BINANCE", "trade_tick")] == 1518
    assert counts[("BTC-USDT.OKX", "order_book_deltas")] == 4969
    assert counts[("ETHUSDT.BINANCE-1-MINUTE-LAST-EXTERNAL", "bar")] == 1440
    assert counts[("BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL", "bar")] == 2 * 1440
    assert counts[("BTCUSDT-PERP.BINANCE", "funding_rate_update")] == 266
    assert counts[("ETH-USDT-SWAP.OKX", "crypto_perpetual")] == 1
    # The 2022 and 2025 data are stored with the perpetual's tick-0.1 definition only (in force since 2022).
    assert counts[("BTCUSDT-PERP.BINANCE", "crypto_perpetual")] == 1


def test_gaps_and_plot_on_the_sample(sample_catalog: Path, tmp_path: Path) -> None:
    runner = CliRunner()

    listing = runner.invoke(app, ["data", "ls", "--catalog", str(sample_catalog)])
    gaps = runner.invoke(app, ["data", "gaps", "--catalog", str(sample_catalog), "--gap-threshold", "trade_tick=2", "--instrument", "ETHUSDT.BINANCE"])
    plot = runner.invoke(app, ["data", "plot", str(tmp_path / "plot.html"), "--catalog", str(sample_catalog), "--start", "2024-08-08T23:56:00"])

    assert listing.exit_code == 0, listing.output
    trade_row = next(line.split() for line in listing.output.splitlines() if line.startswith("ETHUSDT.BINANCE") and " trade_tick " in line)
    assert trade_row[6] == "0"  # no gap over 60 s in six real minutes
    assert gaps.exit_code == 0, gaps.output
    gap_rows = [line for line in gaps.output.splitlines() if line.startswith("ETHUSDT.BINANCE")]
    assert gap_rows and all(line.split()[1] == "trade_tick" for line in gap_rows)
    assert plot.exit_code == 0, plot.output
    assert (tmp_path / "plot.html").stat().st_size > 0


def test_bad_gap_threshold_exits_2(sample_catalog: Path) -> None:
    result = CliRunner().invoke(app, ["data", "ls", "--catalog", str(sample_catalog), "--gap-threshold", "trade_tick"])

    assert result.exit_code == 2
