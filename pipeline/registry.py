"""The asset registry: ``assets.yaml`` parsed and validated strictly.

Contributors add an asset by adding one entry to the YAML list. Everything is
checked before anything runs: unknown keys, wrong types, duplicate or unsafe
ids, leverage weights that do not sum to 1, unsorted margin tiers, names with
characters that mean something to Markdown or HTML, a key given twice in one
mapping, a file that is not UTF-8. Every error names the file, the asset and the
field, e.g.
``assets.yaml:31: asset 'eth': field 'leverage_tiers': weights sum to 0.9, must sum to 1``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline import paths
from pipeline.venues import EXCHANGES

# Window name -> length in milliseconds. Month/year are calendar-agnostic
# approximations (30 d / 365 d); the page states the exact start time anyway.
TIMEFRAMES_MS = {
    "12h": 12 * 3_600_000,
    "24h": 24 * 3_600_000,
    "3d": 3 * 86_400_000,
    "1w": 7 * 86_400_000,
    "2w": 14 * 86_400_000,
    "1M": 30 * 86_400_000,
    "3M": 90 * 86_400_000,
    "6M": 180 * 86_400_000,
    "1y": 365 * 86_400_000,
}

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
_INSTRUMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,39}$")
_SYMBOL = re.compile(r"^[A-Z0-9]{1,15}$")
# Names reach navigation, headings, tables and chart titles: letters (any script), digits,
# spaces and a few harmless punctuation marks. Nothing that Markdown, attr_list, Jinja or
# HTML would read as syntax (< > { } [ ] ` | * _ # \ " ' = ...).
_NAME = re.compile(r"^[^\W_](?:[^\W_]|[ .()/+&-])*$")
NAME_CHARS = "letters, digits, spaces and . - ( ) / + &"


class RegistryError(ValueError):
    """A registry problem, already phrased for the contributor who made it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LeverageTier(_Strict):
    leverage: Annotated[float, Field(gt=1, le=200)]
    weight: Annotated[float, Field(gt=0, le=1)]

    @field_validator("leverage", "weight", mode="before")
    @classmethod
    def _int_ok(cls, v):
        # YAML writes 5 and 0.15 differently; both are numbers to a reader.
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class MarginTier(_Strict):
    """One maintenance-margin bracket: from this position notional (USD) upward, rate ``mmr``."""

    from_usd: Annotated[float, Field(ge=0)]
    mmr: Annotated[float, Field(gt=0, lt=0.5)]

    @field_validator("from_usd", "mmr", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class QualitySettings(_Strict):
    """Plausibility quarantine thresholds (``quality:`` in the registry); see ``sql/quality/``.

    A print is quarantined (kept, counted, left out of the model) when it departs
    from both of its neighbours by more than the factor. The defaults never touch
    the bundled real sample and catch a single 10x (or 1/10) print.
    """

    oi_spike_factor: Annotated[float, Field(gt=1)] = 3.0
    candle_spike_factor: Annotated[float, Field(gt=1)] = 2.0

    @field_validator("oi_spike_factor", "candle_spike_factor", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class ModelSettings(_Strict):
    """Model assumptions. Defaults are documented on the methodology page."""

    side_split: Literal["equal", "taker", "candle"] = "equal"
    entry_price: Literal["close", "typical"] = "typical"
    fade_half_life_hours: Annotated[float, Field(gt=0)] | None = None
    position_notional_usd: Annotated[float, Field(gt=0)] = 10_000.0
    candle_tilt: Annotated[float, Field(ge=0, le=0.5)] = 0.25
    oi_change: Literal["base", "usd"] = "base"

    @field_validator("fade_half_life_hours", "position_notional_usd", "candle_tilt", mode="before")
    @classmethod
    def _int_ok(cls, v):
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class Asset(_Strict):
    id: str
    name: Annotated[str, Field(min_length=1, max_length=60)]
    symbol: str
    instruments: dict[str, str]
    price_bins: Annotated[int, Field(ge=20, le=2000)] = 400
    leverage_tiers: list[LeverageTier]
    mmr_tiers: list[MarginTier]
    timeframes: list[str] = ["12h", "24h", "3d", "1w", "2w", "1M"]
    model: ModelSettings | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError(f"{v!r} must match [a-z0-9][a-z0-9-]* (at most 40 characters)")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v) or "  " in v:
            raise ValueError(f"{v!r} may hold only {NAME_CHARS} (starting with a letter or digit)")
        return v

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, v: str) -> str:
        if not _SYMBOL.match(v):
            raise ValueError(f"{v!r} must be 1-15 capital letters or digits")
        return v

    @field_validator("instruments")
    @classmethod
    def _instruments(cls, v: dict[str, str]) -> dict[str, str]:
        for exchange, inst in v.items():
            if exchange not in EXCHANGES:
                raise ValueError(f"unknown exchange {exchange!r}; known: {', '.join(EXCHANGES)}")
            if not _INSTRUMENT.match(inst):
                raise ValueError(f"{exchange}: instrument {inst!r} must match [A-Za-z0-9_-]")
        return v

    @field_validator("leverage_tiers")
    @classmethod
    def _weights(cls, v: list[LeverageTier]) -> list[LeverageTier]:
        if not v:
            raise ValueError("needs at least one tier")
        total = sum(t.weight for t in v)
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"weights sum to {total:g}, must sum to 1")
        levs = [t.leverage for t in v]
        if len(set(levs)) != len(levs):
            raise ValueError("leverage values must be distinct")
        return v

    @field_validator("mmr_tiers")
    @classmethod
    def _tiers(cls, v: list[MarginTier]) -> list[MarginTier]:
        if not v or v[0].from_usd != 0:
            raise ValueError("the first tier must start at from_usd: 0")
        for a, b in zip(v, v[1:]):
            if not (b.from_usd > a.from_usd and b.mmr > a.mmr):
                raise ValueError("tiers must be sorted with rising from_usd and mmr")
        return v

    @field_validator("timeframes")
    @classmethod
    def _timeframes(cls, v: list[str]) -> list[str]:
        for tf in v:
            if tf not in TIMEFRAMES_MS:
                raise ValueError(f"unknown timeframe {tf!r}; known: {', '.join(TIMEFRAMES_MS)}")
        if len(set(v)) != len(v):
            raise ValueError("timeframes must be distinct")
        return v

    @model_validator(mode="after")
    def _leverage_vs_mmr(self) -> "Asset":
        # A tier whose initial margin is below maintenance margin would be
        # liquidated at entry: reject instead of drawing nonsense.
        mmr0 = self.mmr_tiers[0].mmr
        for t in self.leverage_tiers:
            if 1.0 / t.leverage <= mmr0:
                raise ValueError(
                    f"leverage_tiers: {t.leverage:g}x needs initial margin above the first mmr {mmr0:g}"
                )
        return self


class Registry(_Strict):
    model: ModelSettings = ModelSettings()
    quality: QualitySettings = QualitySettings()
    assets: list[Asset]

    def get(self, asset_id: str) -> Asset:
        for a in self.assets:
            if a.id == asset_id:
                return a
        raise KeyError(asset_id)

    def settings_for(self, asset: Asset) -> ModelSettings:
        """The asset's model settings: the registry defaults, overridden field by field."""
        if asset.model is None:
            return self.model
        overrides = asset.model.model_dump(exclude_unset=True)
        return self.model.model_copy(update=overrides)


def _fmt_loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if p not in ("function-after", "function-before"))


def _line_of(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return v
    return None


class DuplicateKey(yaml.YAMLError):
    def __init__(self, key, line: int, first_line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line, self.first_line = key, line, first_line


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                    seen.setdefault(key, key_node.start_mark.line + 1)
                except TypeError:  # an unhashable key: SafeLoader reports it itself
                    continue
                if first is not None:
                    raise DuplicateKey(key, key_node.start_mark.line + 1, first)
        return super().construct_mapping(node, deep=deep)


def _asset_at(root: yaml.Node | None, line: int) -> str:
    """``asset 'id': `` for the asset entry spanning 1-based ``line``, else ''."""
    seq = _line_of(root, "assets")
    for i, item in enumerate(seq.value if isinstance(seq, yaml.SequenceNode) else []):
        end = item.end_mark.line + (1 if item.end_mark.column else 0)  # the end mark is exclusive
        if item.start_mark.line <= line - 1 < end:
            ident = _line_of(item, "id")
            return f"asset {ident.value!r}: " if isinstance(ident, yaml.ScalarNode) else f"asset #{i + 1}: "
    return ""


def parse(text: str, source: str = "assets.yaml") -> Registry:
    """Parse and validate registry text; raise RegistryError naming file, asset and field."""
    root = None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except DuplicateKey as exc:
        raise RegistryError(f"{source}:{exc.line}: {_asset_at(root, exc.line)}field {str(exc.key)!r}: duplicate key "
                            f"in one mapping (first on line {exc.first_line}); keep one of them") from None
    except yaml.YAMLError as exc:
        raise RegistryError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{source}: top level must be a mapping with an 'assets' list")
    unknown = set(data) - {"model", "quality", "assets"}
    if unknown:
        raise RegistryError(f"{source}: unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}")
    raw_assets = data.get("assets")
    if not isinstance(raw_assets, list) or not raw_assets:
        raise RegistryError(f"{source}: 'assets' must be a non-empty list")
    seq = _line_of(root, "assets")
    items = seq.value if isinstance(seq, yaml.SequenceNode) else [None] * len(raw_assets)

    errors: list[str] = []
    try:
        defaults = ModelSettings.model_validate(data.get("model") or {})
    except ValidationError as exc:
        for e in exc.errors():
            errors.append(f"{source}: model: field '{_fmt_loc(e['loc'])}': {e['msg']}")
        defaults = ModelSettings()
    try:
        quality = QualitySettings.model_validate(data.get("quality") or {})
    except ValidationError as exc:
        for e in exc.errors():
            msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
            errors.append(f"{source}: quality: field '{_fmt_loc(e['loc'])}': {msg}")
        quality = QualitySettings()

    assets: list[Asset] = []
    seen: dict[str, int] = {}
    for i, (raw, node) in enumerate(zip(raw_assets, items)):
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        name = raw.get("id") if isinstance(raw, dict) else None
        who = f"asset {name!r}" if isinstance(name, str) else f"asset #{i + 1}"
        if not isinstance(raw, dict):
            errors.append(f"{source}{line}: {who}: must be a mapping")
            continue
        try:
            asset = Asset.model_validate(raw)
        except ValidationError as exc:
            for e in exc.errors():
                field = _fmt_loc(e["loc"]) or "(entry)"
                msg = e["msg"].removeprefix("Value error, ")
                if e["type"] == "extra_forbidden":
                    msg = "unknown key"
                errors.append(f"{source}{line}: {who}: field '{field}': {msg}")
            continue
        if asset.id in seen:
            errors.append(f"{source}{line}: {who}: field 'id': duplicate id (first used by asset #{seen[asset.id] + 1})")
            continue
        seen[asset.id] = i
        assets.append(asset)
    if errors:
        raise RegistryError("\n".join(errors))
    return Registry(model=defaults, quality=quality, assets=assets)


def load(path: Path | None = None) -> Registry:
    path = Path(path or paths.ASSETS_YAML)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise RegistryError(f"{path.name}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {col}); "
                            "save the file as UTF-8") from None
    return parse(text, source=path.name)
