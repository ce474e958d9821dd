"""The return's form (schemas/template_v1.toml) as typed objects the stages share."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from pipeline.resources import load_schema_file
from pipeline.text import normalise_label

TEMPLATE_FILE = "template_v1.toml"


@cache
def labels_of(names: tuple[str, ...]) -> frozenset[str]:
    """Names as matched against headers (asked for every row while locating: computed once)."""
    return frozenset(normalise_label(x) for x in names)


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    required: bool  # the column must be present
    blank_ok: bool
    aliases: tuple[str, ...] = ()
    list: tuple[str, ...] = ()
    list_name: str = ""
    event: bool = False
    value_aliases: tuple[tuple[str, str], ...] = ()  # (what a clerk writes, the listed value it stands for)

    def labels(self) -> frozenset[str]:
        return labels_of((self.name, *self.aliases))


@dataclass(frozen=True)
class CoverField:
    key: str
    label: str
    aliases: tuple[str, ...]

    def labels(self) -> frozenset[str]:
        return labels_of((self.label, *self.aliases))


@dataclass(frozen=True)
class SheetSpec:
    key: str  # cover | monthly | roster | floating
    name: str
    aliases: tuple[str, ...]
    layout: str  # labels | table
    columns: tuple[ColumnSpec, ...] = ()
    fields: tuple[CoverField, ...] = ()
    group_column: str = ""
    total_label: str = ""

    def labels(self) -> frozenset[str]:
        return labels_of((self.name, *self.aliases))

    def column(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)

    def columns_of_type(self, *types: str) -> list[ColumnSpec]:
        return [c for c in self.columns if c.type in types]


@dataclass(frozen=True)
class RosterRules:
    exits: tuple[str, ...]
    new_entry: str
    over_age: str
    min_age: int
    max_age: int


@dataclass(frozen=True)
class Form:
    version: int
    sheets: dict[str, SheetSpec]
    lists: dict[str, tuple[str, ...]]
    roster: RosterRules

    @property
    def cover(self) -> SheetSpec:
        return self.sheets["cover"]

    @property
    def monthly(self) -> SheetSpec:
        return self.sheets["monthly"]

    @property
    def women(self) -> SheetSpec:
        return self.sheets["roster"]

    @property
    def floating(self) -> SheetSpec:
        return self.sheets["floating"]


@cache
def load_form() -> Form:
    """Template v1 as declared in schemas/."""
    raw = load_schema_file(TEMPLATE_FILE)
    lists = {k: tuple(v) for k, v in raw["lists"].items()}
    aliases = {name: tuple(words.items()) for name, words in raw.get("list_aliases", {}).items()}
    for name, words in aliases.items():
        wrong = [f"{word} = {value}" for word, value in words if value not in lists.get(name, ())]
        if wrong:  # a district's edit that would turn a word into a value the checks then refuse
            raise ValueError(f"{TEMPLATE_FILE} [list_aliases.{name}]: {', '.join(wrong)} 不在列表“{name}”中")
    sheets = {key: _sheet(key, spec, lists, aliases) for key, spec in raw["sheets"].items()}
    r = raw["roster"]
    rules = RosterRules(tuple(r["exits"]), r["new_entry"], r["over_age"], r["min_age"], r["max_age"])
    return Form(raw["version"], sheets, lists, rules)


def _sheet(key: str, spec: dict, lists: dict[str, tuple[str, ...]],
           aliases: dict[str, tuple[tuple[str, str], ...]]) -> SheetSpec:
    columns = tuple(
        ColumnSpec(
            name=c["name"], type=c["type"], required=c.get("presence", "required") == "required",
            blank_ok=c.get("blank", "allowed") == "allowed", aliases=tuple(c.get("aliases", ())),
            list=lists.get(c.get("list", ""), ()), list_name=c.get("list", ""),
            event=bool(c.get("event", False)), value_aliases=aliases.get(c.get("list", ""), ()),
        )
        for c in spec.get("columns", ())
    )
    fields = tuple(CoverField(f["key"], f["label"], tuple(f.get("aliases", ()))) for f in spec.get("fields", ()))
    return SheetSpec(key, spec["name"], tuple(spec.get("aliases", ())), spec["layout"], columns, fields,
                     spec.get("group_column", ""), spec.get("total_label", ""))
