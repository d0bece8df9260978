"""`keel data ingest` and `keel data ls` on the real sample."""

from pathlib import Path

from typer.testing import CliRunner

from keel.cli import app
from keel.data.ingest import sample_recordings


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
