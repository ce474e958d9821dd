"""The unit registry and the street's settings (SPEC §10): pipeline.toml or the demo street."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.resources import schemas_dir, toml_text
from pipeline.text import normalise_label

REGISTRY_FILE = "pipeline.toml"


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    kind: str
    aliases: tuple[str, ...]
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Street:
    code: str
    name: str
    district: str
    deadline_day: int = 5


@dataclass(frozen=True)
class Settings:
    """Everything a street may tune beside the registry keys, with SPEC defaults."""

    stat_year_start_month: int = 1  # 10 for the family-planning year (1 Oct – 30 Sep)
    swing_share: float = 0.10
    swing_count: int = 20
    mask_ids: bool = True
    severity: dict[str, str] = field(default_factory=dict)  # code -> error|warning|info
    inbox: str = "inbox"
    outbox: str = "outbox"
    archive: str = "archive"
    quarantine: str = "quarantine"
    history: str = "history.sqlite"
    backups: str = "backups"  # a copy of the history a day (store/backup.py)
    history_backups: int = 7  # how many daily copies are kept; 0: none (back it up some other way)
    settle_seconds: float = 2.0  # a file younger than this may still be being copied
    lang: str = "zh"  # language of the messages in reports: zh or en


@dataclass(frozen=True)
class Registry:
    street: Street
    units: tuple[Unit, ...]
    settings: Settings
    source: Path

    def in_language(self, lang: str | None) -> "Registry":
        """The same registry with reports in `lang` (None keeps the street's choice)."""
        return self if lang is None else replace(self, settings=replace(self.settings, lang=lang))

    def unit_by_code(self, code: str) -> Unit | None:
        return next((u for u in self.units if u.code == code), None)

    def find_unit(self, text: str) -> Unit | None:
        """The unit a name, alias or code refers to (spaces and full-width forms ignored)."""
        key = normalise_label(text)
        if not key:
            return None
        for unit in self.units:
            names = (unit.code, unit.name, *unit.aliases)
            if any(normalise_label(n) == key for n in names):
                return unit
        return None

    def units_named_in(self, text: str) -> list[Unit]:
        """Units whose name or alias occurs in a longer text such as a file name."""
        key = normalise_label(text)
        found = []
        for unit in self.units:
            names = sorted((unit.code, unit.name, *unit.aliases), key=len, reverse=True)
            if any(len(normalise_label(n)) >= 2 and normalise_label(n) in key for n in names):
                found.append(unit)
        return found


def demo_registry_path() -> Path:
    return schemas_dir() / "demo_street.toml"


def find_registry(workdir: Path, config: Path | None) -> Path:
    """--config wins; then pipeline.toml in the working folder; then the demo street."""
    if config is not None:
        return config
    local = workdir / REGISTRY_FILE
    return local if local.is_file() else demo_registry_path()


def load_registry(path: Path) -> Registry:
    """Read a registry file; raise RegistryError with a readable reason if it is wrong."""
    try:
        data = tomllib.loads(toml_text(path))
    except OSError as exc:
        raise RegistryError(f"无法读取登记文件 {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise RegistryError(f"登记文件 {path} 的文字编码无法识别:请用记事本打开,另存为时编码选 UTF-8") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"登记文件 {path} 格式有误: {exc}") from exc
    return parse_registry(data, path)


def parse_registry(data: dict[str, Any], source: Path) -> Registry:
    try:
        s = data["street"]
        street = Street(str(s["code"]), s["name"], s.get("district", ""), int(s.get("deadline_day", 5)))
        units = tuple(
            Unit(str(u["code"]), u["name"], u.get("kind", "村"), tuple(u.get("aliases", [])),
                 tuple(u.get("groups", [])))
            for u in data.get("units", [])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(f"登记文件 {source} 缺少或写错了项目: {exc}") from exc
    if not units:
        raise RegistryError(f"登记文件 {source} 没有登记任何村(居)")
    codes = [u.code for u in units]
    if len(set(codes)) != len(codes):
        raise RegistryError(f"登记文件 {source} 中单位代码重复")
    return Registry(street, units, parse_settings(data.get("settings", {})), source)


def parse_settings(raw: dict[str, Any]) -> Settings:
    known = Settings.__dataclass_fields__
    unknown = set(raw) - set(known)
    if unknown:
        raise RegistryError(f"登记文件 [settings] 中有不认识的设置: {', '.join(sorted(unknown))}")
    settings = Settings(**raw)
    if not isinstance(settings.history_backups, int) or settings.history_backups < 0:
        raise RegistryError(f"登记文件 [settings] history_backups 应是 0 或正整数(保留几天的历史库备份),"
                            f"现在是 {settings.history_backups!r}")
    if settings.lang not in ("zh", "en"):
        raise RegistryError(f"登记文件 [settings] lang 只能是 zh 或 en,现在是 {settings.lang}")
    return settings


class RegistryError(Exception):
    """The registry file is missing, unreadable or inconsistent: the run cannot proceed."""
