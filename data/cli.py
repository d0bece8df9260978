"""``keel data``: put raw venue files into the catalog, and see what it holds and what is wrong with it."""

from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from keel.data.cli_format import echo_table
from keel.data.cli_format import iso
from keel.data.ingest_cli import ingest_app

data_app = typer.Typer(
    name="data",
    help="Ingest raw venue files into the catalog; list, check and plot what it holds.",
    no_args_is_help=True,
)
data_app.add_typer(ingest_app)

CatalogOption = Annotated[Path | None, typer.Option(help="Catalog folder (default $KEEL_HOME/catalog).")]
InstrumentOption = Annotated[list[str] | None, typer.Option(help="Only this instrument id (repeatable), e.g. BTCUSDT.BINANCE.")]
GapThresholdOption = Annotated[
    list[str] | None,
    typer.Option(
        "--gap-threshold",
        help="TYPE=SECONDS (repeatable): a gap is an interval without data longer than this, e.g. trade_tick=5 "
        "(defaults: 60 s for ticks and depth, one bar for time bars, 8 h for funding rates).",
    ),
]


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the ``keel`` app."""
    app.add_typer(data_app)


@data_app.command(name="ls")
def list_catalog(catalog: CatalogOption = None, gap_threshold: GapThresholdOption = None) -> None:
    """List what the catalog holds: instrument (or bar type), data type, first/last ts_init, rows, files, gaps and the longest gap."""
    from keel.data.inventory import catalog_inventory
    from keel.settings import default_catalog_path

    root = catalog or default_catalog_path()
    rows = catalog_inventory(root, _gap_thresholds(gap_threshold))
    if not rows:
        typer.echo(f"{root}: empty catalog (run `keel data ingest ...` first)")
        return
    echo_table(
        ("instrument", "data type", "first", "last", "rows", "files", "gaps", "longest gap"),
        [
            (
                row.identifier,
                row.data_type,
                iso(row.first_ts),
                iso(row.last_ts),
                str(row.rows),
                str(row.files),
                "-" if row.gap_threshold_ns is None else str(row.gaps),
                "-" if row.gap_threshold_ns is None or not row.gaps else _duration(row.longest_gap_ns),
            )
            for row in rows
        ],
    )
    typer.echo(f"catalog: {root}")


@data_app.command(name="gaps")
def list_gaps(
    catalog: CatalogOption = None,
    instrument: InstrumentOption = None,
    gap_threshold: GapThresholdOption = None,
    max_shown: Annotated[int, typer.Option(help="Gaps printed at most (all are counted).")] = 50,
) -> None:
    """List each interval without data longer than its threshold: instrument, data type, start, end, duration, and the file it is in or the two files around it."""
    from keel.data.inventory import catalog_gaps
    from keel.settings import default_catalog_path

    root = catalog or default_catalog_path()
    gaps = catalog_gaps(root, _gap_thresholds(gap_threshold), instrument or None)
    echo_table(
        ("instrument", "data type", "start", "end", "duration", "where"),
        [
            (
                gap.identifier,
                gap.data_type,
                iso(gap.start_ns),
                iso(gap.end_ns),
                _duration(gap.duration_ns),
                gap.files[0].name if gap.within_file else f"between {gap.files[0].name} and {gap.files[1].name}",
            )
            for gap in gaps[:max_shown]
        ],
    )
    if len(gaps) > max_shown:
        typer.echo(f"... {len(gaps) - max_shown} more gaps not shown")
    typer.echo(f"catalog: {root}: {len(gaps)} gaps")


@data_app.command(name="plot")
def plot_catalog_command(
    output: Annotated[Path, typer.Argument(help="The HTML file to write.")],
    catalog: CatalogOption = None,
    instrument: InstrumentOption = None,
    start: Annotated[str | None, typer.Option(help="From this UTC time (ISO 8601, e.g. 2024-08-08T23:55).")] = None,
    end: Annotated[str | None, typer.Option(help="Until this UTC time (ISO 8601).")] = None,
    max_points: Annotated[int, typer.Option(help="Points per series at most (each time bucket keeps its min and max).")] = 5000,
    gap_threshold: GapThresholdOption = None,
) -> None:
    """Write one self-contained HTML page (works offline): a coverage timeline with gaps in red, and per instrument the trade price and the quoted spread (bps)."""
    from keel.data.plot import plot_catalog
    from keel.settings import default_catalog_path

    root = catalog or default_catalog_path()
    written = plot_catalog(
        root, output, instrument or None, _timestamp_ns("--start", start), _timestamp_ns("--end", end), max_points, _gap_thresholds(gap_threshold)
    )
    typer.echo(f"plot: {written} (open it in a browser)")


def _gap_thresholds(options: list[str] | None) -> dict[str, int] | None:
    if not options:
        return None
    thresholds = {}
    for option in options:
        data_type, separator, seconds = option.partition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not separator or not data_type or value <= 0:
            typer.echo(f"error: --gap-threshold {option!r}: expected TYPE=SECONDS with positive seconds, e.g. trade_tick=5", err=True)
            raise typer.Exit(code=2)
        thresholds[data_type] = int(value * 1e9)
    return thresholds


def _timestamp_ns(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        typer.echo(f"error: {option} {text!r}: expected an ISO 8601 time, e.g. 2024-08-08T23:55:00", err=True)
        raise typer.Exit(code=2) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _duration(nanoseconds: int) -> str:
    return f"{nanoseconds / 1e9:.1f}s"


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
    echo_table(
        ("instrument", "data type", "rows", "findings"),
        [(instrument_id, data_type, str(rows), str(counts[(instrument_id, data_type)])) for instrument_id, data_type, rows in report.checked],
    )
    verdict = "FAIL" if report.failed else "ok"
    typer.echo(f"catalog: {root}: {verdict} ({len(report.findings)} findings)")
    if report.failed:
        raise typer.Exit(code=1)
