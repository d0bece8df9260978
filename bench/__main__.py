"""``python -m bench``: run every benchmark side by side on the same sample, print them, exit 1 on a failure."""

import argparse
import json
import sys
from pathlib import Path

from bench import ingest_dump
from bench import ingest_recording
from bench import ingest_trades
from bench import run_fixed_cost


def main(argv: list[str] | None = None) -> int:
    """
    Run the trade-writer, dump-file and recording ingest benchmarks and print their reports.

    Exit code 1 if any pair of catalogs differs, or (with ``--strict``) if a target is missed; else 0.
    """
    parser = argparse.ArgumentParser(prog="python -m bench", description="Ingest throughput: Keel against nautilus's wrangler route.")
    parser.add_argument("--rows", type=int, default=ingest_trades.DEFAULT_ROWS, help=f"input rows (default {ingest_trades.DEFAULT_ROWS:,})")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per route; the fastest counts (default 3)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a throughput target is missed")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    arguments = parser.parse_args(argv)
    writer = ingest_trades.run(arguments.rows, arguments.repeats)
    print(ingest_trades.report(writer))
    dump = ingest_dump.run(arguments.rows, arguments.repeats)
    print(ingest_dump.report(dump))
    recordings = {source: ingest_recording.run(source, arguments.rows, arguments.repeats) for source in ingest_recording.SOURCES}
    for result in recordings.values():
        print(ingest_recording.report(result))
    fixed_cost = run_fixed_cost.run(arguments.repeats)
    print(run_fixed_cost.report(fixed_cost))
    if arguments.json is not None:
        results = {"trade_writer": ingest_trades.result_dict(writer), "dump_file": ingest_dump.result_dict(dump)}
        results |= {f"recording_{source}": ingest_recording.result_dict(result) for source, result in recordings.items()}
        arguments.json.write_text(json.dumps(results, indent=2) + "\n")
    every = [writer, dump, *recordings.values()]
    if not all(result.identical for result in every):
        return 1
    targets_met = all(result.targets.ratio_target_met and result.targets.throughput_target_met for result in every)
    if arguments.strict and not (targets_met and fixed_cost.target_met):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
