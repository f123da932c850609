"""Registry hardening: names with markup characters, duplicate YAML keys, non-UTF-8 files, quality settings."""

from __future__ import annotations

import pytest

from pipeline import paths, registry
from pipeline.cli import main as cli_main

GOOD = paths.ASSETS_YAML.read_text(encoding="utf-8")


def parse_error(text: str) -> str:
    with pytest.raises(registry.RegistryError) as exc:
        registry.parse(text, source="assets.yaml")
    return str(exc.value)


@pytest.mark.parametrize("name", [
    "<img src=x onerror=alert(1)>", "Eth {: onmouseover=alert(2) tabindex=1 }", "[x](javascript:alert(1))",
    "`code`", "a|b", "*bold*", "_x_", "# head", "back\\slash", 'quo"te', "it's", "a=b", "{{ 7*7 }}",
    " leading space", "two  spaces", "tab\there", "new\nline", "zero\u200bwidth",
])
def test_hostile_names_are_refused_with_file_asset_and_field(name):
    bad = GOOD.replace("    name: Ethereum\n", f"    name: {name!r}\n".replace("\\\\", "\\"), 1) \
        if "\n" not in name and "\t" not in name else GOOD.replace("    name: Ethereum\n", f'    name: "{name.encode("unicode_escape").decode()}"\n', 1)
    msg = parse_error(bad)
    assert msg.startswith("assets.yaml:") and "asset 'eth'" in msg and "field 'name'" in msg
    assert "may hold only letters, digits, spaces and . - ( ) / + &" in msg


@pytest.mark.parametrize("name", ["Bitcoin", "Wrapped BTC (wBTC)", "S&P 500", "USD/JPY", "Dogwifhat 2.0", "Ether-Fi",
                                  "Ethereum+", "Ðogecoin", "比特币"])
def test_ordinary_names_are_accepted(name):
    reg = registry.parse(GOOD.replace("    name: Ethereum\n", f"    name: {name}\n", 1))
    assert reg.get("eth").name == name


@pytest.mark.parametrize("symbol", ["<b>", "ET H", "eth", "{ETH}"])
def test_hostile_symbols_are_refused(symbol):
    msg = parse_error(GOOD.replace("    symbol: ETH\n", f"    symbol: {symbol!r}\n", 1))
    assert "asset 'eth'" in msg and "field 'symbol'" in msg


def test_duplicate_key_inside_an_asset_names_file_line_asset_and_key():
    bad = GOOD.replace("    symbol: ETH\n", "    symbol: ETH\n    name: Evil\n", 1)
    msg = parse_error(bad)
    line = bad.splitlines().index("    name: Evil") + 1
    first = bad.splitlines().index("    name: Ethereum") + 1
    assert msg == (f"assets.yaml:{line}: asset 'eth': field 'name': duplicate key in one mapping "
                   f"(first on line {first}); keep one of them")


def test_duplicate_key_in_a_nested_and_in_the_top_mapping():
    msg = parse_error(GOOD.replace("      okx: SOL-USDT-SWAP\n", "      okx: SOL-USDT-SWAP\n      okx: SOL-X\n", 1))
    assert "asset 'sol': field 'okx': duplicate key" in msg
    msg = parse_error(GOOD + "\nmodel:\n  side_split: taker\n")
    assert msg.startswith("assets.yaml:") and ": field 'model': duplicate key" in msg and "asset '" not in msg


def test_non_utf8_registry_is_one_clear_line(tmp_path, capsys):
    f = tmp_path / "assets.yaml"
    f.write_bytes(GOOD.replace("name: Solana", "name: Sol\xe9na").encode("latin-1"))
    with pytest.raises(registry.RegistryError) as exc:
        registry.load(f)
    line = GOOD.splitlines().index("    name: Solana") + 1
    assert str(exc.value) == f"assets.yaml:{line}: not UTF-8 text (byte 0xe9 at column 14); save the file as UTF-8"
    assert cli_main(["check", "--assets", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == str(exc.value) and "Traceback" not in err


def test_quality_settings_have_defaults_and_strict_keys():
    reg = registry.parse(GOOD)
    assert reg.quality.oi_spike_factor == 3.0 and reg.quality.candle_spike_factor == 2.0
    reg = registry.parse(GOOD + "\nquality:\n  oi_spike_factor: 5\n")
    assert reg.quality.oi_spike_factor == 5.0
    msg = parse_error(GOOD + "\nquality:\n  oi_spike: 5\n")
    assert "quality: field 'oi_spike': unknown key" in msg
    msg = parse_error(GOOD + "\nquality:\n  candle_spike_factor: 1\n")
    assert "quality: field 'candle_spike_factor'" in msg
