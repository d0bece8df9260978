"""``keel data ingest <source>``: one subcommand per kind of raw file, each all or nothing into the catalog."""

from collections.abc import Callable
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Annotated

import typer

from keel.data.cli_format import echo_ingest_report

if TYPE_CHECKING:
    from keel.data.ingest import IngestReport
    from keel.data.progress import IngestProgress
    from keel.data.quality import CheckPolicies

ingest_app = typer.Typer(
    name="ingest",
    help="Ingest raw venue files into the catalog (all or nothing; the data checks run on every table).",
    no_args_is_help=True,
)

CatalogOption = Annotated[Path | None, typer.Option(help="Catalog folder (default $KEEL_HOME/catalog).")]
ChecksOption = Annotated[
    Path | None, typer.Option(help="Checks file: a fail/warn/repair/off policy per data check (default configs/data_checks.yaml).")
]
ReplaceOption = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="Replace the catalog's data of a window the files hold different data for (its rows outside the window are kept). "
        "Without it such data is refused, naming both files; the same data again is always a no-op.",
    ),
]


class InstrumentSource(StrEnum):
    """Which venue response an instruments file is."""

    BINANCE_SPOT = "binance-spot"
    BINANCE_USDM = "binance-usdm"
    OKX = "okx"


class BinanceMarketChoice(StrEnum):
    """Which Binance market's instruments the files refer to."""

    SPOT = "spot"
    USDM = "usdm"


class DumpKind(StrEnum):
    """The data.binance.vision dump layouts."""

    TRADES = "trades"
    AGG_TRADES = "aggTrades"
    KLINES = "klines"
    BOOK_TICKER = "bookTicker"


@ingest_app.command(name="binance-spot")
def ingest_binance_spot_command(
    recordings: Annotated[list[Path], typer.Argument(help="Recording files: gzip or text lines '<local ts ns> <json>'.")],
    catalog: CatalogOption = None,
    exchange_info: Annotated[
        Path | None, typer.Option(help="Saved /api/v3/exchangeInfo response with every recorded symbol (default: the shipped one).")
    ] = None,
    checks: ChecksOption = None,
    replace: ReplaceOption = False,
) -> None:
    """
    Ingest Binance spot websocket recordings: trades, bookTicker quotes (with their update ids), L2 depth (snapshot + diffs).

    Every line is checked (JSON, order of local times, depth rule U == previous u + 1, trade ids); on any error the file and line are named and the catalog is left exactly as it was. Files are read in time order; a file without a snapshot continues the previous file of its symbol (given here, or already in the catalog) when its first diff continues that file's last one, and is refused as a gap otherwise. Ingesting the same data again is a no-op.
    """
    from keel.data.ingest import DEFAULT_EXCHANGE_INFO
    from keel.data.ingest import ingest_binance_spot
    from keel.data.progress import IngestProgress

    policies = load_policies(checks)
    progress = IngestProgress(recordings)
    run_ingest(
        lambda root: ingest_binance_spot(recordings, root, exchange_info or DEFAULT_EXCHANGE_INFO, policies, replace=replace, progress=progress),
        catalog,
        progress,
    )


@ingest_app.command(name="binance-usdm")
def ingest_binance_usdm_command(
    recordings: Annotated[list[Path], typer.Argument(help="USDT-M recording files: gzip or text lines '<local ts ns> <json>'.")],
    catalog: CatalogOption = None,
    exchange_info: Annotated[Path | None, typer.Option(help="Saved /fapi/v1/exchangeInfo response (default: the shipped one).")] = None,
    history: Annotated[Path | None, typer.Option(help="Tick-size history YAML (default data/sample/binance_usdm/tick_size_history.yaml).")] = None,
    checks: ChecksOption = None,
    replace: ReplaceOption = False,
) -> None:
    """
    Ingest Binance USDT-M futures recordings as <SYMBOL>-PERP.BINANCE: trades (MARKET prints), bookTicker quotes, L2 depth.

    Depth continuity is the futures rule (pu == previous u), also from a file to the next one it continues (given here, or already in the catalog); each recording is priced on the instrument version in force at its first timestamp (tick-size history), and a price off that version's tick is refused. On any error the file and line are named and the catalog is left exactly as it was.
    """
    from keel.data.binance_usdm_ingest import DEFAULT_TICK_SIZE_HISTORY
    from keel.data.binance_usdm_ingest import DEFAULT_USDM_EXCHANGE_INFO
    from keel.data.binance_usdm_ingest import ingest_binance_usdm
    from keel.data.progress import IngestProgress

    policies = load_policies(checks)
    progress = IngestProgress(recordings)
    run_ingest(
        lambda root: ingest_binance_usdm(
            recordings, root, exchange_info or DEFAULT_USDM_EXCHANGE_INFO, history or DEFAULT_TICK_SIZE_HISTORY, policies,
            replace=replace, progress=progress,
        ),
        catalog,
        progress,
    )


@ingest_app.command(name="okx")
def ingest_okx_command(
    recordings: Annotated[
        list[Path], typer.Argument(help="cryptofeed OKX captures (gzip or text), '<connection>.<n>'; rotated files of one connection are read in order.")
    ],
    catalog: CatalogOption = None,
    instruments: Annotated[
        Path | None, typer.Option(help="Saved /api/v5/public/instruments response, or the shipped extract (default data/sample/okx/instruments.json).")
    ] = None,
    checks: ChecksOption = None,
    replace: ReplaceOption = False,
) -> None:
    """
    Ingest OKX v5 public websocket recordings: books L2 deltas, trades, tickers quotes.

    After every books message the rebuilt book must reproduce OKX's CRC32 checksum (for every instrument in the file), seqId/prevSeqId must chain where present, trade ids must follow each other and local times must not go backwards; on any error the file, line and instId are named and the catalog is left exactly as it was. Instruments without a definition are skipped and counted.
    """
    from keel.data.okx_instruments import DEFAULT_OKX_INSTRUMENTS
    from keel.data.okx_recording import ingest_okx_recording
    from keel.data.progress import IngestProgress

    policies = load_policies(checks)
    progress = IngestProgress(recordings)
    report = run_ingest(
        lambda root: ingest_okx_recording(recordings, root, instruments or DEFAULT_OKX_INSTRUMENTS, policies, replace=replace, progress=progress),
        catalog,
        progress,
    )
    typer.echo(f"checked: {report.checksums_verified} books checksums")
    for key, count in sorted(report.skipped_messages.items()):
        typer.echo(f"skipped: {key}: {count} messages (no instrument definition, or a channel not ingested)")


@ingest_app.command(name="tardis")
def ingest_tardis_command(
    files: Annotated[
        list[Path], typer.Argument(help="Tardis downloadable CSV files, plain or gzip: trades, quotes, incremental_book_L2 or book_snapshot_N.")
    ],
    catalog: CatalogOption = None,
    kind: Annotated[
        str | None, typer.Option(help="Layout of every file: trades, quotes, incremental_book_L2, book_snapshot_25, book_snapshot_5 (default: from each header).")
    ] = None,
    market: Annotated[BinanceMarketChoice, typer.Option(help="Instruments of the files' symbols: usdm (Tardis binance-futures) or spot (binance).")] = BinanceMarketChoice.USDM,
    exchange_info: Annotated[Path | None, typer.Option(help="Saved exchangeInfo of that market (default: the shipped one).")] = None,
    history: Annotated[Path | None, typer.Option(help="usdm only: tick-size history YAML (default: the shipped one).")] = None,
    checks: ChecksOption = None,
    replace: ReplaceOption = False,
) -> None:
    """
    Ingest Tardis.dev CSV files: trades, quotes, incremental L2 book, top-N book snapshots.

    Every line is checked (header columns, field count, microsecond timestamps, local_timestamp never going back, side values, decimals on the instrument's tick); on any error the file, line and field are named and the catalog is left exactly as it was. usdm files are priced on the instrument version in force at their first local_timestamp.
    """
    from keel.data.errors import DataInputError
    from keel.data.progress import IngestProgress
    from keel.data.tardis import ingest_tardis

    policies = load_policies(checks)
    instruments = _binance_instruments(market, exchange_info, history)
    progress = IngestProgress(files)

    def ingest(root: Path) -> "IngestReport":
        try:
            return ingest_tardis(files, root, instruments, kind, policies, replace=replace, progress=progress)
        except ValueError as error:  # an unknown --kind; DataInputError (a ValueError too) is bad input in a file
            if isinstance(error, DataInputError):
                raise
            typer.echo(f"error: --kind: {error}", err=True)
            raise typer.Exit(code=2) from None

    run_ingest(ingest, catalog, progress)


@ingest_app.command(name="binance-dump")
def ingest_binance_dump_command(
    kind: Annotated[DumpKind, typer.Argument(help="The dump layout.")],
    files: Annotated[list[Path], typer.Argument(help="data.binance.vision files: .csv or a .zip holding one csv, with or without a header row.")],
    catalog: CatalogOption = None,
    market: Annotated[BinanceMarketChoice, typer.Option(help="spot (<SYMBOL>.BINANCE) or usdm (<SYMBOL>-PERP.BINANCE).")] = BinanceMarketChoice.SPOT,
    symbol: Annotated[str | None, typer.Option(help="The Binance symbol of every file (default: from each file name, e.g. BTCUSDT-trades-2024-08-08.zip).")] = None,
    interval: Annotated[str | None, typer.Option(help="klines only: the interval, e.g. 1m or 4h (default: from the file name).")] = None,
    exchange_info: Annotated[Path | None, typer.Option(help="Saved exchangeInfo of that market (default: the shipped one).")] = None,
    history: Annotated[Path | None, typer.Option(help="usdm only: tick-size history YAML (default: the shipped one).")] = None,
    checks: ChecksOption = None,
    replace: ReplaceOption = False,
) -> None:
    """
    Ingest data.binance.vision dumps: trades and aggTrades as trade ticks, bookTicker as quote ticks, klines as bars.

    Header rows and the timestamp unit (ms, or µs for spot files from 2025) are detected per file; numbers are read as text and must sit on the instrument's grid; ids must be contiguous and times must not go back. On any error the file, line and field are named and the catalog is left exactly as it was.
    """
    from keel.data.binance_dumps import ingest_binance_dump
    from keel.data.progress import IngestProgress

    policies = load_policies(checks)
    instruments = _binance_instruments(market, exchange_info, history)
    progress = IngestProgress(files)
    run_ingest(
        lambda root: ingest_binance_dump(kind.value, files, root, instruments, interval, symbol, policies, replace=replace, progress=progress),
        catalog,
        progress,
    )


@ingest_app.command(name="bars")
def ingest_bars_command(
    files: Annotated[list[Path], typer.Argument(help="OHLCV files: freqtrade .feather or .json, or .csv with date,open,high,low,close,volume.")],
    instrument: Annotated[str, typer.Option(help="The bars' instrument id, e.g. BTCUSDT.BINANCE, BTCUSDT-PERP.BINANCE or BTC-USDT-SWAP.OKX.")],
    catalog: CatalogOption = None,
    interval: Annotated[str | None, typer.Option(help="The bar interval, e.g. 1m, 5m, 1h (default: from the freqtrade file name).")] = None,
    market: Annotated[str | None, typer.Option(help="spot or futures, overriding the freqtrade file name.")] = None,
    allow_gaps: Annotated[bool, typer.Option(help="Accept missing bars (whole multiples of the interval); duplicates and steps back stay errors.")] = False,
    instruments_file: Annotated[Path | None, typer.Option(help="Saved exchangeInfo / OKX instruments response (default: the shipped one of the venue).")] = None,
    checks: ChecksOption = None,
    replace: ReplaceOption = False,
) -> None:
    """
    Ingest OHLCV bars as <instrument>-<n>-<UNIT>-LAST-EXTERNAL bars (ts_init = the bar's close, nautilus' convention).

    Floats are put on the instrument's tick and step grid and refused when off it; high >= max(open, close), low <= min(open, close), volume >= 0 and consecutive intervals are checked. On any error the file, row and field are named and the catalog is left exactly as it was.
    """
    from keel.data.bars import ingest_ohlcv_bars

    policies = load_policies(checks)
    versions = _instrument_versions(instrument, instruments_file)
    run_ingest(lambda root: ingest_ohlcv_bars(files, root, versions, interval, market, allow_gaps=allow_gaps, checks=policies, replace=replace), catalog)


@ingest_app.command(name="funding")
def ingest_funding_command(
    files: Annotated[list[Path], typer.Argument(help="freqtrade *-funding_rate.feather files or saved Binance GET /fapi/v1/fundingRate responses (.json).")],
    instrument: Annotated[str, typer.Option(help="The perpetual, e.g. BTCUSDT-PERP.BINANCE.")] = "BTCUSDT-PERP.BINANCE",
    catalog: CatalogOption = None,
    interval_minutes: Annotated[int | None, typer.Option(help="Minutes between settlements (default: from the file name; 480 for Binance JSON).")] = None,
    instruments_file: Annotated[Path | None, typer.Option(help="Saved /fapi/v1/exchangeInfo response (default: the shipped one).")] = None,
    checks: ChecksOption = None,
    replace: ReplaceOption = False,
) -> None:
    """
    Ingest funding-rate history as FundingRateUpdate (nautilus delivers them to on_funding_rate in a backtest; it does not settle them).

    Settlements must step by the interval; a missing one is an error naming the row. The catalog is left exactly as it was on any error.
    """
    from keel.data.funding import ingest_funding_rates

    policies = load_policies(checks)
    versions = _instrument_versions(instrument, instruments_file)
    run_ingest(lambda root: ingest_funding_rates(files, root, versions, interval_minutes, policies, replace=replace), catalog)


@ingest_app.command(name="instruments")
def ingest_instruments_command(
    source: Annotated[InstrumentSource, typer.Argument(help="Which venue response the file is.")],
    path: Annotated[Path, typer.Argument(help="Saved exchangeInfo (Binance) or /api/v5/public/instruments (OKX) response.")],
    symbol: Annotated[list[str] | None, typer.Option(help="Only this venue symbol (repeatable), e.g. BTCUSDT or BTC-USDT-SWAP; default: all.")] = None,
    catalog: CatalogOption = None,
) -> None:
    """
    Store instrument definitions (tick, step, min/max quantity, min notional, fees, multiplier) in the catalog.

    Each definition is stored with the response's time as its version; storing the same one again is a no-op. Data ingests store the instruments they use themselves: this command is for definitions ahead of data, or a newer version.
    """
    from keel.data.ingest import commit_tables

    wanted = set(symbol) if symbol else None

    def ingest(root: Path) -> "IngestReport":
        return commit_tables(root, list(_instruments_from(source, path, wanted).values()), [])

    run_ingest(ingest, catalog)


def load_policies(checks: Path | None) -> "CheckPolicies":
    """Read the checks file (default ``configs/data_checks.yaml``); a bad one exits 2 naming file and field."""
    from keel.data.quality import DEFAULT_CHECKS_FILE
    from keel.data.quality import DataCheckConfigError
    from keel.data.quality import load_check_policies

    try:
        return load_check_policies(checks or DEFAULT_CHECKS_FILE)
    except DataCheckConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None


def run_ingest(ingest: Callable[[Path], "IngestReport"], catalog: Path | None, progress: "IngestProgress | None" = None) -> "IngestReport":
    """Run one source's ingest into the catalog (drawing ``progress`` while it runs) and print its report; bad input exits 2 with the error."""
    from keel.data.errors import DataInputError
    from keel.settings import default_catalog_path

    try:
        with progress if progress is not None else nullcontext():
            report = ingest(catalog or default_catalog_path())
    except DataInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    echo_ingest_report(report)
    return report


def _binance_instruments(market: BinanceMarketChoice, exchange_info: Path | None, history: Path | None) -> dict:
    """Return Binance instruments keyed by symbol: spot pairs, or USDT-M perpetual versions (tick-size history)."""
    from keel.data.errors import DataInputError

    try:
        if market == BinanceMarketChoice.SPOT:
            from keel.data.ingest import DEFAULT_EXCHANGE_INFO
            from keel.data.instruments import binance_spot_instruments

            return binance_spot_instruments(exchange_info or DEFAULT_EXCHANGE_INFO)
        from keel.data.binance_usdm_ingest import DEFAULT_TICK_SIZE_HISTORY
        from keel.data.binance_usdm_ingest import DEFAULT_USDM_EXCHANGE_INFO
        from keel.data.instrument_history import binance_usdm_instrument_versions

        return binance_usdm_instrument_versions(exchange_info or DEFAULT_USDM_EXCHANGE_INFO, history or DEFAULT_TICK_SIZE_HISTORY)
    except DataInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None


def _instrument_versions(instrument_id: str, instruments_file: Path | None) -> list:
    """Return the versions of one instrument from its venue's instruments file; a bad id or file exits 2."""
    from keel.data.errors import DataInputError
    from keel.data.instruments import PERPETUAL_SUFFIX

    symbol, _, venue = instrument_id.rpartition(".")
    try:
        if venue == "BINANCE" and symbol.endswith(PERPETUAL_SUFFIX):
            versions = _binance_instruments(BinanceMarketChoice.USDM, instruments_file, None)
            found = versions.get(symbol.removesuffix(PERPETUAL_SUFFIX))
        elif venue == "BINANCE":
            found = _binance_instruments(BinanceMarketChoice.SPOT, instruments_file, None).get(symbol)
        elif venue == "OKX":
            from keel.data.okx_instruments import DEFAULT_OKX_INSTRUMENTS
            from keel.data.okx_instruments import okx_instruments

            found = okx_instruments(instruments_file or DEFAULT_OKX_INSTRUMENTS).get(symbol)
        else:
            found = None
    except DataInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    if found is None:
        typer.echo(f"error: --instrument {instrument_id!r}: not in the instruments file (expected e.g. BTCUSDT.BINANCE, BTCUSDT-PERP.BINANCE, BTC-USDT-SWAP.OKX)", err=True)
        raise typer.Exit(code=2)
    return found if isinstance(found, list) else [found]


def _instruments_from(source: InstrumentSource, path: Path, symbols: set[str] | None) -> dict:
    if source == InstrumentSource.BINANCE_SPOT:
        from keel.data.instruments import binance_spot_instruments

        return binance_spot_instruments(path, symbols)
    if source == InstrumentSource.BINANCE_USDM:
        from keel.data.instruments import binance_usdm_instruments

        return binance_usdm_instruments(path, symbols)
    from keel.data.okx_instruments import okx_instruments

    return okx_instruments(path, symbols)
