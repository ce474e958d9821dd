"""The unit registry and the street's settings (SPEC §10): pipeline.toml or the demo street."""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from pipeline.resources import schemas_dir, toml_text
from pipeline.text import normalise_label

REGISTRY_FILE = "pipeline.toml"
UNIT_KINDS = ("村", "社区")
# Other words a registry may use for a kind (a street that wrote 居委会 kept its nights after the kind was checked).
KIND_WORDS = {"村委会": "村", "村民委员会": "村", "行政村": "村", "居委会": "社区", "居民委员会": "社区",
              "社区居委会": "社区", "社区居民委员会": "社区", "居": "社区"}


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
        return self._by_code.get(code)

    def find_unit(self, text: str) -> Unit | None:
        """The unit a name, alias or code refers to (spaces and full-width forms ignored); else the one
        unit whose name is that text's without the committee's words (满春村村民委员会 is 满春村)."""
        key = normalise_label(text)
        if not key:
            return None
        if key in self._by_label:
            return self._by_label[key]
        core, kind = unit_core(key)
        named = [u for u in self._by_core.get(core, ()) if not kind or kind == u.kind]
        return named[0] if len(named) == 1 else None

    def units_named_in(self, text: str) -> list[Unit]:
        """Units whose code, name or alias (two characters or more) occurs in a longer text such as a file name.

        Every piece of the text is looked up, not every unit's names searched for: a city registers thousands."""
        key, index, longest = normalise_label(text), self._by_label, self._longest_label
        found = {unit.code: unit for i in range(len(key)) for j in range(i + 2, min(len(key), i + longest) + 1)
                 if (unit := index.get(key[i:j])) is not None}
        return sorted(found.values(), key=self.units.index) if len(found) > 1 else list(found.values())

    # Indexes made on first use (a frozen dataclass still has a __dict__ for cached_property).
    @cached_property
    def _by_code(self) -> dict[str, Unit]:
        return {u.code: u for u in self.units}

    @cached_property
    def _by_label(self) -> dict[str, Unit]:
        """Each unit's code, name and aliases as matched (the registry's checks keep them apart)."""
        index: dict[str, Unit] = {}
        for unit in self.units:
            for name in (unit.code, unit.name, *unit.aliases):
                index.setdefault(normalise_label(name), unit)
        index.pop("", None)
        return index

    @cached_property
    def _longest_label(self) -> int:
        return max(map(len, self._by_label), default=0)

    @cached_property
    def _by_core(self) -> dict[str, list[Unit]]:
        index: dict[str, list[Unit]] = {}
        for unit in self.units:
            for core in dict.fromkeys(unit_core(n)[0] for n in (unit.name, *unit.aliases)):
                index.setdefault(core, []).append(unit)
        return index


# How a committee's formal name ends (村民委员会, 社区居委会…), then the kind of unit: what is left names it.
_COMMITTEE_WORDS = {"社区居民委员会": "社区", "社区居委会": "社区", "居民委员会": "社区", "居委会": "社区",
                    "村民委员会": "村", "村委会": "村", "委员会": ""}
_KIND_WORDS = {"社区": "社区", "村": "村"}


def unit_core(text: str) -> tuple[str, str]:
    """满春村村民委员会, 满春村委会, 满春村 → (满春, 村): a unit's name without the words every unit's name
    has, and the kind those words say ("" if none)."""
    core, kind = normalise_label(text), ""
    for words in (_COMMITTEE_WORDS, _KIND_WORDS):
        word = next((w for w in words if core.endswith(w) and len(core) > len(w)), None)
        if word:
            core, kind = core[: -len(word)], kind or words[word]
    return core, kind


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
    """The registry as written, or RegistryError listing every mistake at once (it is edited by hand, in
    Notepad: one run that names them all beats a night per mistake)."""
    problems: list[str] = []
    street = _street(data.get("street"), problems)
    raw_units = data.get("units", [])
    if not isinstance(raw_units, list) or not raw_units:
        problems.append("没有登记任何村(居):每个村(居)写一段 [[units]]")
        raw_units = []
    units = [unit for i, raw in enumerate(raw_units, 1) if (unit := _unit(i, raw, problems)) is not None]
    problems += _clashes(units)
    try:
        settings = parse_settings(data.get("settings", {}))
    except RegistryError as exc:
        problems += exc.problems
    if problems:
        raise RegistryError(problems, source)
    return Registry(street, tuple(units), settings, source)


def _street(raw: Any, problems: list[str]) -> Street:
    if not isinstance(raw, dict):
        problems.append("缺少 [street] 一段(街道的代码 code、名称 name、区 district、截止日 deadline_day)")
        return Street("", "", "")
    where = "[street]"
    code, name = _required_text(raw, "code", where, problems), _required_text(raw, "name", where, problems)
    district = raw.get("district", "")
    if not isinstance(district, str):
        problems.append(f"{where} district 应是文字(区名,加引号),现在是 {district!r}")
    day = raw.get("deadline_day", 5)
    if not _whole(day) or not 1 <= day <= 31:
        problems.append(f"{where} deadline_day 应是 1 到 31 的整数(次月几号前报送),现在是 {day!r}")
        day = 5
    return Street(code, name, district if isinstance(district, str) else "", day)


def _unit(number: int, raw: Any, problems: list[str]) -> Unit | None:
    if not isinstance(raw, dict):
        problems.append(f"第 {number} 个村(居)不是 [[units]] 一段")
        return None
    name = raw.get("name")
    where = f"第 {number} 个 [[units]]" + (f"({name})" if isinstance(name, str) and name.strip() else "")
    code, name = _required_text(raw, "code", where, problems), _required_text(raw, "name", where, problems)
    kind = raw.get("kind", "村")
    kind = KIND_WORDS.get(normalise_label(kind), kind) if isinstance(kind, str) else kind
    if kind not in UNIT_KINDS:
        problems.append(f"{where} kind 只能是 {' 或 '.join(UNIT_KINDS)},现在是 {kind!r}")
    aliases = _text_list(raw, "aliases", where, problems)
    groups = _text_list(raw, "groups", where, problems)
    if "groups" in raw and not groups and isinstance(raw["groups"], list):
        problems.append(f"{where} groups 没有列出任何小组:月报的每一行都要对应一个登记的小组")
    elif "groups" not in raw:
        problems.append(f"{where} 缺少 groups(本村(居)的小组名称,如 groups = [\"一组\", \"二组\"])")
    firsts: dict[str, str] = {}
    groups = [firsts.setdefault(normalise_label(g), g) for g in groups if normalise_label(g) not in firsts]  # once
    return Unit(code, name, kind if isinstance(kind, str) else "村", tuple(aliases), tuple(groups))


def _clashes(units: list[Unit]) -> list[str]:
    """A code registered twice, or a name or alias two units share: a return naming it could be either's."""
    problems = []
    codes: dict[str, Unit] = {}
    for unit in units:
        if unit.code and unit.code in codes:
            problems.append(f"单位代码 {unit.code} 登记了两次(“{codes[unit.code].name}”和“{unit.name}”),"
                            "每个村(居)的代码应不同")
        codes.setdefault(unit.code, unit)
    owners: dict[str, Unit] = {}
    for unit in units:
        for text in {normalise_label(n): n for n in (unit.name, *unit.aliases) if normalise_label(n)}.items():
            owner = owners.setdefault(text[0], unit)
            if owner is not unit:
                problems.append(f"“{text[1]}”同时是“{owner.name}”和“{unit.name}”的名称或别名:封面写它的月报"
                                "无法确定是哪个单位的。请从其中一个的 aliases 里删去")
    return problems


def _required_text(raw: dict, key: str, where: str, problems: list[str]) -> str:
    value = raw.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and key == "code":
        return str(value)  # a code written without quotes: TOML keeps its digits (it forbids leading zeros)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{where} 缺少 {key}" + (f"(现在是 {value!r},应是加引号的文字)" if value is not None else ""))
        return ""
    return value.strip()


def _text_list(raw: dict, key: str, where: str, problems: list[str]) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        problems.append(f"{where} {key} 应写成方括号里加引号的名称,用逗号隔开,如 {key} = [\"一组\", \"二组\"]"
                        f",现在是 {value!r}")
        return []
    return [v.strip() for v in value]


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# [settings] key → (is the value right, what it should be: said to whoever edits the file)
SETTING_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "stat_year_start_month": (lambda v: _whole(v) and 1 <= v <= 12, "1 到 12 的整数(统计年度从几月开始,计生年度为 10)"),
    "swing_share": (lambda v: _number(v) and 0 <= v <= 1, "0 到 1 之间的比例(0.10 即 10%)"),
    "swing_count": (lambda v: _whole(v) and v >= 0, "0 或正整数(人数)"),
    "mask_ids": (lambda v: isinstance(v, bool), "true 或 false"),
    "settle_seconds": (lambda v: _number(v) and v >= 0, "0 或正数(秒)"),
    "history_backups": (lambda v: _whole(v) and v >= 0, "0 或正整数(保留几天的历史库备份)"),
    "lang": (lambda v: v in ("zh", "en"), "zh 或 en"),
    "severity": (lambda v: isinstance(v, dict), "一段 [settings.severity],每行 规则代码 = \"error\"、\"warning\" 或 \"info\""),
    **{folder: (lambda v: isinstance(v, str) and bool(v.strip()), "加引号的文件夹或文件路径")
       for folder in ("inbox", "outbox", "archive", "quarantine", "history", "backups")},
}


def parse_settings(raw: dict[str, Any]) -> Settings:
    """[settings], every value checked against what it should be; RegistryError lists what is not."""
    problems = []
    if not isinstance(raw, dict):
        raise RegistryError(["[settings] 应是一段设置(每行 名称 = 值)"])
    unknown = set(raw) - set(Settings.__dataclass_fields__)
    if unknown:
        problems.append(f"[settings] 中有不认识的设置: {', '.join(sorted(unknown))}")
    for key, value in raw.items():
        if key in SETTING_RULES and not SETTING_RULES[key][0](value):
            problems.append(f"[settings] {key} 应是 {SETTING_RULES[key][1]},现在是 {value!r}")
    if isinstance(raw.get("severity"), dict):
        problems += _severity_problems(raw["severity"])
    if problems:
        raise RegistryError(problems)
    return Settings(**raw)


def _severity_problems(chosen: dict[str, Any]) -> list[str]:
    from pipeline.findings import Severity, catalogue  # findings reads the schemas: only when asked

    known = catalogue()
    problems = []
    for code, value in chosen.items():
        if code not in known:
            near = difflib.get_close_matches(code, known, n=1)
            problems.append(f"[settings.severity] 没有叫 {code} 的规则" + (f",是不是 {near[0]}?" if near else "")
                            + "(规则代码见 schemas/rules.toml)")
        if value not in {s.value for s in Severity}:
            problems.append(f"[settings.severity] {code} 应是 \"error\"、\"warning\" 或 \"info\",现在是 {value!r}")
    return problems


class RegistryError(Exception):
    """The registry file is missing, unreadable or inconsistent: the run cannot proceed.

    Made from a message, or from the list of what is wrong in it (`problems`), said at once."""

    def __init__(self, problems: str | list[str], source: Path | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if isinstance(problems, str):
            text = problems
        elif len(self.problems) == 1:
            text = f"登记文件 {source or REGISTRY_FILE}:{self.problems[0]}"
        else:
            text = f"登记文件 {source or REGISTRY_FILE} 有 {len(self.problems)} 处需要修改:" + "".join(
                f"\n  {i}. {p}" for i, p in enumerate(self.problems, 1))
        super().__init__(text)
