"""Fixtures shared by every test folder: the sample catalog and the shared real-data folder."""

from pathlib import Path

import pytest

from keel.data.ingest import ingest_binance_spot
from keel.data.ingest import sample_recordings
from keel.settings import REPO_ROOT


@pytest.fixture(scope="session")
def sample_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """
    Return a catalog ingested once per session from the shipped sample (``data/sample/binance_spot``).

    It holds ``BTCUSDT.BINANCE`` and ``ETHUSDT.BINANCE`` (CurrencyPair), their trade ticks, bookTicker quote
    ticks and L2 order book deltas for 2024-08-08 23:54:14 -> 23:59:59.999 UTC. Every test shares it:
    read it, never write into it (ingest into your own ``tmp_path`` instead).
    """
    catalog = tmp_path_factory.mktemp("sample_catalog") / "catalog"
    ingest_binance_spot(sample_recordings(), catalog)
    return catalog


@pytest.fixture
def redis_service() -> None:
    """Fail (not skip) with a clear message when Redis is not on 127.0.0.1:6379 (tests marked requires_redis)."""
    from keel.live.environment import load_environment
    from keel.live.node import NodeSetupError
    from keel.live.node import check_redis

    try:
        check_redis(load_environment("emulator").state)
    except NodeSetupError as error:
        pytest.fail(f"requires_redis: {error}")


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """Return ``../shared/data/real`` beside the repo, skipping the test when that folder is absent."""
    path = REPO_ROOT.parent / "shared" / "data" / "real"
    if not path.is_dir():
        pytest.skip(f"../shared/data/real absent: {path} not found (real-data tests need the shared folder)")
    return path
