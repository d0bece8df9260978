"""Console formatting shared by the ``keel data`` commands: timestamps, tables, and the ingest report."""

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from keel.data.ingest import IngestReport


def iso(ts_ns: int) -> str:
    """Return a UTC timestamp (ns) as ``2024-08-08T23:54:13.937085Z``."""
    import pandas as pd

    return pd.Timestamp(ts_ns, unit="ns", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def echo_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print rows as left-aligned columns under a header."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    for row in (header, *rows):
        typer.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def echo_ingest_report(report: "IngestReport", max_shown: int = 20) -> None:
    """Print what an ingest wrote (or found already there), the data-check findings, and rounding notes."""
    rows = [(item.instrument_id, item.data_type, iso(item.first_ts), iso(item.last_ts), str(item.rows), item.status) for item in report.files]
    echo_table(("instrument", "data type", "first", "last", "rows", "status"), rows)
    for finding in report.findings[:max_shown]:
        typer.echo(str(finding))
    if len(report.findings) > max_shown:
        typer.echo(f"... {len(report.findings) - max_shown} more findings not shown")
    for instrument_id, count in report.rounded_quantities.items():
        if count:
            typer.echo(f"note: {instrument_id}: {count} quantities finer than the size step were rounded up to it")
    typer.echo(f"catalog: {report.catalog}" + ("" if report.changed_catalog else " (unchanged: everything was already there)"))
