"""``python -m bench``: run every benchmark (today: trade-tick ingest) and exit 1 if a target is missed."""

import sys

from bench.ingest_trades import main

if __name__ == "__main__":
    sys.exit(main())
