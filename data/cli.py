"""``keel data``: put raw venue files into the catalog and see what it holds."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Annotated

import typer

if TYPE_CHECKING:
    from keel.data.ingest import IngestReport
    from keel.data.quality import CheckPolicies

data_app = typer.Typer(
    name="data",
    help="Ingest raw venue files into the catalog and list what it holds.",
    no_args_is_help=True,
)
ingest_app = typer.Typer(name="ingest", help="Ingest raw venue files into the catalog (all or nothing).", no_args_is_help=True)
data_app.add_typer(ingest_app)

_CatalogOption = Annotated[Path | None, typer.Option(help="Catalog folder (default $KEEL_HOME/catalog).")]
_ChecksOption = Annotated[
    Path | None, typer.Option(help="Checks file: a fail/warn/repair/off policy per data check (default configs/data_checks.yaml).")
]


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the ``keel`` app."""
    app.add_typer(data_app)


@ingest_app.command(name="binance-spot")
def ingest_binance_spot_command(
    recordings: Annotated[list[Path], typer.Argument(help="Recording files: gzip or text lines '<local ts ns> <json>'.")],
    catalog: _CatalogOption = None,
    exchange_info: Annotated[
        Path | None,
        typer.Option(help="Saved /api/v3/exchangeInfo response with every recorded symbol (default: the shipped one)."),
    ] = None,
    checks: _ChecksOption = None,
) -> None:
    """
    Ingest Binance spot websocket recordings: trades, bookTicker quotes, L2 depth (snapshot + diffs).

    Every line is checked (JSON, order of local times, depth update-id continuity, trade ids), then the data checks of the checks file run on every table; on any error the file and line (or row) are named and the catalog is left exactly as it was. Ingesting the same file again is a no-op.
    """
    from keel.data.ingest import DEFAULT_EXCHANGE_INFO
    from keel.data.ingest import ingest_binance_spot

    policies = _load_policies(checks)
    _run_ingest(lambda root: ingest_binance_spot(recordings, root, exchange_info or DEFAULT_EXCHANGE_INFO, policies), catalog)


def _load_policies(checks: Path | None) -> "CheckPolicies":
    from keel.data.quality import DEFAULT_CHECKS_FILE
    from keel.data.quality import DataCheckConfigError
    from keel.data.quality import load_check_policies

    try:
        return load_check_policies(checks or DEFAULT_CHECKS_FILE)
    except DataCheckConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None


def _run_ingest(ingest: Callable[[Path], "IngestReport"], catalog: Path | None, max_shown: int = 20) -> None:
    """Run one source's ingest into the catalog and print what it wrote and found; bad input exits 2."""
    from keel.data.errors import DataInputError
    from keel.settings import default_catalog_path

    try:
        report = ingest(catalog or default_catalog_path())
    except DataInputError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    rows = [(item.instrument_id, item.data_type, _iso(item.first_ts), _iso(item.last_ts), str(item.rows), item.status) for item in report.files]
    _table(("instrument", "data type", "first", "last", "rows", "status"), rows)
    for finding in report.findings[:max_shown]:
        typer.echo(str(finding))
    if len(report.findings) > max_shown:
        typer.echo(f"... {len(report.findings) - max_shown} more findings not shown")
    for instrument_id, count in report.rounded_quantities.items():
        if count:
            typer.echo(f"note: {instrument_id}: {count} depth quantities finer than the size step were rounded up to it")
    typer.echo(f"catalog: {report.catalog}" + ("" if report.changed_catalog else " (unchanged: everything was already there)"))


@data_app.command(name="ls")
def list_catalog(
    catalog: Annotated[Path | None, typer.Option(help="Catalog folder (default $KEEL_HOME/catalog).")] = None,
) -> None:
    """List what the catalog holds: instrument, data type, first/last timestamp, rows, files."""
    import pyarrow.parquet as pq

    from keel.data.catalog_layout import catalog_files
    from keel.settings import default_catalog_path

    root = catalog or default_catalog_path()
    files = catalog_files(root)
    if not files:
        typer.echo(f"{root}: empty catalog (run `keel data ingest ...` first)")
        return
    groups: dict[tuple[str, str], list] = {}
    for item in files:
        groups.setdefault((item.identifier, item.data_type), []).append(item)
    rows = []
    for (identifier, data_type), items in sorted(groups.items()):
        count = sum(pq.ParquetFile(item.path).metadata.num_rows for item in items)
        rows.append((identifier, data_type, _iso(items[0].first_ts), _iso(max(item.last_ts for item in items)), str(count), str(len(items))))
    _table(("instrument", "data type", "first", "last", "rows", "files"), rows)
    typer.echo(f"catalog: {root}")


def _iso(ts_ns: int) -> str:
    import pandas as pd

    return pd.Timestamp(ts_ns, unit="ns", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@data_app.command(name="check")
def check_catalog_command(
    catalog: Annotated[Path | None, typer.Option(help="Catalog folder (default $KEEL_HOME/catalog).")] = None,
    instrument: Annotated[list[str] | None, typer.Option(help="Only this instrument id (repeatable), e.g. BTCUSDT.BINANCE.")] = None,
    checks: Annotated[Path | None, typer.Option(help="Checks file with a policy per check (default configs/data_checks.yaml).")] = None,
    max_shown: Annotated[int, typer.Option(help="Findings printed per check, instrument and data type (all are counted).")] = 20,
) -> None:
    """
    Check catalog data: ts_init order, trade id duplicates/gaps, crossed quotes, zero volume, price outliers, depth sequence.

    Each finding names the instrument, data type, file, row (0-based) and field, and what was expected. Exit code 1
    when a check whose policy is `fail` finds something, 0 otherwise (warnings included).
    """
    from keel.data.quality import DEFAULT_CHECKS_FILE
    from keel.data.quality import DataCheckConfigError
    from keel.data.quality import check_catalog
    from keel.data.quality import load_check_policies
    from keel.settings import default_catalog_path

    root = catalog or default_catalog_path()
    try:
        policies = load_check_policies(checks or DEFAULT_CHECKS_FILE)
    except DataCheckConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    report = check_catalog(root, policies, instrument or None)
    if not report.checked:
        typer.echo(f"error: {root}: no trade, quote or depth data" + (f" for {', '.join(instrument)}" if instrument else ""), err=True)
        raise typer.Exit(code=2)
    shown: dict[tuple[str, str, str], int] = {}
    for finding in report.findings:
        key = (finding.check, finding.instrument_id, finding.data_type)
        shown[key] = shown.get(key, 0) + 1
        if shown[key] <= max_shown:
            typer.echo(str(finding))
    for (check, instrument_id, data_type), count in shown.items():
        if count > max_shown:
            typer.echo(f"... {check}: {instrument_id} {data_type}: {count - max_shown} more findings not shown")
    counts = {(instrument_id, data_type): 0 for instrument_id, data_type, _ in report.checked}
    for finding in report.findings:
        counts[(finding.instrument_id, finding.data_type)] += 1
    _table(
        ("instrument", "data type", "rows", "findings"),
        [(instrument_id, data_type, str(rows), str(counts[(instrument_id, data_type)])) for instrument_id, data_type, rows in report.checked],
    )
    verdict = "FAIL" if report.failed else "ok"
    typer.echo(f"catalog: {root}: {verdict} ({len(report.findings)} findings)")
    if report.failed:
        raise typer.Exit(code=1)
