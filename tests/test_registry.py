"""The asset registry rejects bad entries with errors naming file, asset and field."""

from __future__ import annotations

import pytest

from pipeline import paths, registry
from pipeline.cli import main as cli_main

GOOD = paths.ASSETS_YAML.read_text(encoding="utf-8")


def parse_error(text: str) -> str:
    with pytest.raises(registry.RegistryError) as exc:
        registry.parse(text, source="assets.yaml")
    return str(exc.value)


def test_shipped_registry_is_valid_and_has_seed_assets():
    reg = registry.load()
    ids = [a.id for a in reg.assets]
    assert {"btc", "eth", "sol", "xrp"} <= set(ids)
    for a in reg.assets:
        assert abs(sum(t.weight for t in a.leverage_tiers) - 1) < 1e-9


def test_unknown_key_names_file_line_asset_and_field():
    bad = GOOD.replace("  - id: eth\n", "  - id: eth\n    colour: red\n", 1)
    msg = parse_error(bad)
    assert "assets.yaml:" in msg and "asset 'eth'" in msg and "field 'colour'" in msg and "unknown key" in msg


def test_weights_must_sum_to_one():
    bad = GOOD.replace("{leverage: 100, weight: 0.10}", "{leverage: 100, weight: 0.05}", 1)
    msg = parse_error(bad)
    assert "asset 'btc'" in msg and "field 'leverage_tiers'" in msg and "sum to 0.95" in msg


def test_wrong_type_is_rejected_not_coerced():
    bad = GOOD.replace("price_bins: 400", 'price_bins: "400"', 1)
    msg = parse_error(bad)
    assert "asset 'btc'" in msg and "field 'price_bins'" in msg


def test_duplicate_id():
    bad = GOOD.replace("id: sol", "id: eth", 1)
    msg = parse_error(bad)
    assert "field 'id'" in msg and "duplicate id" in msg


@pytest.mark.parametrize("bad_id", ["BTC", "../etc", "b tc", "btc/x", "<script>", ""])
def test_unsafe_ids_rejected(bad_id):
    bad = GOOD.replace("id: xrp", f"id: {bad_id!r}", 1)
    msg = parse_error(bad)
    assert "field 'id'" in msg


def test_unknown_exchange_and_unsafe_instrument():
    msg = parse_error(GOOD.replace("      dydx: SOL-USD\n", "      ftx: SOL-PERP\n", 1))
    assert "asset 'sol'" in msg and "field 'instruments'" in msg and "unknown exchange 'ftx'" in msg
    msg = parse_error(GOOD.replace("binance: XRPUSDT", "binance: ../../x", 1))
    assert "asset 'xrp'" in msg and "instrument" in msg


def test_mmr_tiers_must_start_at_zero_and_rise():
    msg = parse_error(GOOD.replace("{from_usd: 50000, mmr: 0.005}", "{from_usd: 50000, mmr: 0.003}", 1))
    assert "field 'mmr_tiers'" in msg


def test_leverage_beyond_maintenance_margin_rejected():
    msg = parse_error(GOOD.replace("{leverage: 50, weight: 0.20}\n    mmr_tiers:\n      - {from_usd: 0, mmr: 0.005}\n      - {from_usd: 10000",
                                   "{leverage: 500, weight: 0.20}\n    mmr_tiers:\n      - {from_usd: 0, mmr: 0.005}\n      - {from_usd: 10000", 1))
    assert "field 'leverage_tiers" in msg


def test_unknown_timeframe_and_top_level_key():
    assert "field 'timeframes'" in parse_error(GOOD.replace("timeframes: [12h, 24h, 3d, 1w, 2w, 1M]", "timeframes: [5m]", 1))
    assert "unknown top-level key" in parse_error(GOOD + "\nextra: 1\n")


def test_model_overrides_merge_field_by_field():
    text = GOOD.replace("  - id: eth\n", "  - id: eth\n    model: {fade_half_life_hours: 48}\n", 1)
    reg = registry.parse(text)
    eth = reg.settings_for(reg.get("eth"))
    assert eth.fade_half_life_hours == 48.0 and eth.side_split == reg.model.side_split
    assert reg.settings_for(reg.get("btc")).fade_half_life_hours is None


def test_liqmap_check_cli(tmp_path, capsys, data_dir):
    assert cli_main(["check"]) == 0
    bad = tmp_path / "assets.yaml"
    bad.write_text(GOOD.replace("symbol: SOL", "symbol: 12.5", 1))
    assert cli_main(["check", "--assets", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "asset 'sol'" in err and "field 'symbol'" in err
