"""Environment files: the shipped ones load, bad ones fail naming the field, non-loopback is refused."""

from pathlib import Path

import msgspec
import pytest
import yaml
from nautilus_trader.common.config import ActorFactory

from keel.assembly import assemble
from keel.live.credentials import CredentialsError
from keel.live.credentials import generate_credentials
from keel.live.credentials import resolve_credentials
from keel.live.environment import EnvironmentFileError
from keel.live.environment import load_environment
from keel.live.environment import resolve_environment_path
from keel.live.node import NodeSetupError
from keel.live.node import VenueEndpoints
from keel.live.node import VenueNotServedError
from keel.live.node import build_node_config
from keel.live.node import check_redis
from keel.live.node import check_venues_served
from keel.live.node import trader_id_for
from keel.live.recorder import SessionRecorder
from keel.live.session_layout import NODE_LOG_NAME
from keel.settings import CONFIGS_DIR
from keel.variant import Variant

EMULATOR_ENV = CONFIGS_DIR / "env" / "emulator.yaml"
LOOPBACK = VenueEndpoints(http="http://127.0.0.1:9", ws_stream="ws://127.0.0.1:9", ws_api="ws://127.0.0.1:9/ws-api/v3")


def _emulator_document() -> dict:
    return yaml.safe_load(EMULATOR_ENV.read_text())


def _write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "env.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _variant() -> Variant:
    document = {
        "name": "probe",
        "strategy": {
            "strategy_path": "nautilus_trader.examples.strategies.ema_cross:EMACross",
            "config_path": "nautilus_trader.examples.strategies.ema_cross:EMACrossConfig",
            "config": {
                "instrument_id": "BTCUSDT.BINANCE",
                "bar_type": "BTCUSDT.BINANCE-1-MINUTE-LAST-INTERNAL",
                "trade_size": "0.0002",
            },
        },
    }
    return msgspec.convert(document, Variant)


def _basket_variant(instrument_ids: list[str], venues: list[str] | None = None) -> Variant:
    document = {
        "name": "basket",
        "venues": venues or ["binance_spot"],
        "strategy": {
            "strategy_path": "probe_strategy:BasketProbeStrategy",
            "config_path": "probe_strategy:BasketProbeStrategyConfig",
            "config": {"instrument_ids": instrument_ids, "trade_sizes": ["0.0002"] * len(instrument_ids)},
        },
    }
    return msgspec.convert(document, Variant)


def test_shipped_environments_load() -> None:
    emulator = load_environment("emulator")
    example = load_environment(CONFIGS_DIR / "env" / "binance_live.example.yaml")

    assert resolve_environment_path("emulator") == EMULATOR_ENV
    assert (emulator.kind, emulator.credentials.source, emulator.reconciliation.enabled) == ("emulator", "generated", True)
    assert emulator.reconciliation.lookback_mins is None
    assert (example.kind, example.credentials.api_key_env, example.state.fresh_on_start) == ("live", "BINANCE_API_KEY", False)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentFileError, match="nope.yaml: environment file not found"):
        load_environment(tmp_path / "nope.yaml")


def test_unknown_field_is_named(tmp_path: Path) -> None:
    document = _emulator_document()
    document["timeouts"]["conection"] = 3
    with pytest.raises(EnvironmentFileError, match=r"env.yaml: .*conection.*\$\.timeouts"):
        load_environment(_write(tmp_path, document))


def test_wrong_type_is_named(tmp_path: Path) -> None:
    document = _emulator_document()
    document["emulator"]["speed"] = "fast"
    with pytest.raises(EnvironmentFileError, match=r"\$\.emulator\.speed"):
        load_environment(_write(tmp_path, document))


@pytest.mark.parametrize(
    ("section", "field", "value", "expected"),
    [
        ("endpoints", "http", "https://api.binance.com", "endpoints.http"),
        ("emulator", "host", "10.1.2.3", "emulator.host"),
        ("state", "redis_host", "redis.example.com", "state.redis_host"),
    ],
)
def test_emulator_env_refuses_non_loopback_hosts(tmp_path: Path, section: str, field: str, value: str, expected: str) -> None:
    document = _emulator_document()
    document.setdefault(section, {})[field] = value
    with pytest.raises(EnvironmentFileError, match=rf"{expected} = .* not a loopback address; refused"):
        load_environment(_write(tmp_path, document))


def test_emulator_env_refuses_env_credentials(tmp_path: Path) -> None:
    document = _emulator_document()
    document["credentials"] = {"source": "env", "api_key_env": "K", "api_secret_env": "S"}
    with pytest.raises(EnvironmentFileError, match="credentials.source must be 'generated'"):
        load_environment(_write(tmp_path, document))


def test_live_env_refuses_fresh_state(tmp_path: Path) -> None:
    document = yaml.safe_load((CONFIGS_DIR / "env" / "binance_live.example.yaml").read_text())
    document["state"]["fresh_on_start"] = True
    with pytest.raises(EnvironmentFileError, match="state.fresh_on_start must be false"):
        load_environment(_write(tmp_path, document))


def test_watchdog_must_outlast_connection_timeout(tmp_path: Path) -> None:
    document = _emulator_document()
    document["timeouts"]["watchdog"] = document["timeouts"]["connection"]
    with pytest.raises(EnvironmentFileError, match="timeouts.watchdog"):
        load_environment(_write(tmp_path, document))


def test_node_config_refuses_unset_or_remote_urls_for_emulator(tmp_path: Path) -> None:
    environment = load_environment("emulator")
    credentials = generate_credentials("hmac")
    for endpoints in (
        VenueEndpoints(http=None, ws_stream=LOOPBACK.ws_stream, ws_api=LOOPBACK.ws_api),
        VenueEndpoints(http=LOOPBACK.http, ws_stream="wss://stream.binance.com:9443", ws_api=LOOPBACK.ws_api),
    ):
        with pytest.raises(NodeSetupError, match="not a loopback URL; refused"):
            build_node_config(_variant(), environment, endpoints, credentials, tmp_path)


def test_node_config_wires_every_url_reconciliation_and_redis(tmp_path: Path) -> None:
    environment = load_environment("emulator")
    config = build_node_config(_variant(), environment, LOOPBACK, generate_credentials("hmac"), tmp_path)

    data, execution = config.data_clients["BINANCE"], config.exec_clients["BINANCE"]
    assert (data.base_url_http, data.base_url_ws) == (LOOPBACK.http, LOOPBACK.ws_stream)
    assert (execution.base_url_http, execution.base_url_ws) == (LOOPBACK.http, LOOPBACK.ws_api)
    assert execution.account_type.value == "SPOT"
    assert [str(i) for i in data.instrument_provider.load_ids] == ["BTCUSDT.BINANCE"]
    assert config.exec_engine.reconciliation is True
    assert config.exec_engine.reconciliation_lookback_mins is None
    assert (config.cache.database.type, config.cache.database.host) == ("redis", "127.0.0.1")
    assert config.trader_id.value == trader_id_for("probe", "emulator") == "PROBE-EMULATOR"
    assert (config.logging.log_directory, config.logging.log_file_name) == (str(tmp_path), NODE_LOG_NAME)


def test_node_runs_what_the_assembly_gives_for_every_instrument(tmp_path: Path) -> None:
    variant = _basket_variant(["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"])
    config = build_node_config(variant, load_environment("emulator"), LOOPBACK, generate_credentials("hmac"), tmp_path)

    components = assemble(variant, "live", session_dir=str(tmp_path))
    assert (config.strategies, config.actors, config.controller) == (components.strategies, components.actors, components.controller)
    recorder = ActorFactory.create(config.actors[0])  # built by import path, as the node's kernel builds it
    assert isinstance(recorder, SessionRecorder)
    assert [str(i) for i in recorder.config.instrument_ids] == ["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"]
    assert recorder.config.session_dir == str(tmp_path)
    for client in (config.data_clients["BINANCE"], config.exec_clients["BINANCE"]):
        assert sorted(str(i) for i in client.instrument_provider.load_ids) == ["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"]


@pytest.mark.parametrize(
    ("venues", "instrument_ids", "expected"),
    [
        (["binance_usdm"], ["BTCUSDT-PERP.BINANCE"], r"venues \['binance_usdm'\], but environment 'emulator' serves one 'binance_spot' account"),
        (["okx"], ["BTC-USDT.OKX"], r"venues \['okx'\], but environment 'emulator' serves one 'binance_spot' account"),
        (["binance_spot", "okx"], ["BTCUSDT.BINANCE", "BTC-USDT.OKX"], r"venues \['binance_spot', 'okx'\]"),
        (["binance_spot"], ["BTC-USDT.OKX"], r"instrument BTC-USDT.OKX does not trade on BINANCE"),
    ],
)
def test_a_node_refuses_venues_it_does_not_serve(venues: list[str], instrument_ids: list[str], expected: str) -> None:
    with pytest.raises(VenueNotServedError, match=expected):
        check_venues_served(_basket_variant(instrument_ids, venues), load_environment("emulator"))


def test_a_binance_spot_basket_is_served() -> None:
    check_venues_served(_basket_variant(["BTCUSDT.BINANCE", "ETHUSDT.BINANCE"]), load_environment("emulator"))


def test_generated_secret_stays_out_of_repr() -> None:
    for key_type in ("hmac", "ed25519"):
        credentials = generate_credentials(key_type)
        assert credentials.api_secret not in repr(credentials)
    assert "BEGIN PRIVATE KEY" in generate_credentials("ed25519").api_secret


def test_env_credentials_name_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    environment = load_environment(CONFIGS_DIR / "env" / "binance_live.example.yaml")
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    with pytest.raises(CredentialsError, match="BINANCE_API_KEY is not set"):
        resolve_credentials(environment.credentials)
    monkeypatch.setenv("BINANCE_API_KEY", "key")
    monkeypatch.setenv("BINANCE_API_SECRET", "secret")
    assert resolve_credentials(environment.credentials).api_secret == "secret"


def test_unreachable_redis_is_a_clear_error(tmp_path: Path) -> None:
    document = _emulator_document()
    document["state"]["redis_port"] = 1  # nothing listens on port 1
    environment = load_environment(_write(tmp_path, document))
    with pytest.raises(NodeSetupError, match=r"Redis at 127.0.0.1:1 is unreachable"):
        check_redis(environment.state)
