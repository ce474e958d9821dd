"""The return a unit fills in (`pipeline template`), blank or pre-filled from last month.

The layout is the return writer's (pipeline.returnbook), so a template reads exactly as
any return does; this module adds what makes mistakes hard in Excel: the cover filled in,
the unit's groups listed with a 合计 row of SUM formulas, drop-down lists for coded
columns and groups, whole numbers >= 0 for counts, ID and phone columns as text (all 18
digits kept), dates checked, headers and formulas locked (sheet protection without a
password, data cells unlocked), panes frozen, and a short 填表说明 sheet.

Pre-filled from the history store, next month's template carries this month's accepted
return forward: 期初人口 = 期末人口, the rosters without last month's leavers and with
变动 reset to 无 (超龄 set for a woman who turns 50 by the new month's end), the stock
figures the rosters give, so the clerk only enters what changed.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pandas as pd
from openpyxl.styles import Alignment, Border, Font, Protection, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from pipeline.forms import ColumnSpec, Form, SheetSpec, load_form
from pipeline.periods import deadline, label_zh, month_end, shift
from pipeline.registry import Registry, Unit
from pipeline.returnbook import ReturnData, write_return
from pipeline.store.history import History
from pipeline.text import normalise_label
from pipeline.validate.batch import RET, ReturnKey
from pipeline.validate.registers import GROUP, REGISTER_FIGURES, ROSTER_FIGURES, age_on, id_birth_date, \
    register_counts, roster_counts
from pipeline.write.safe import atomic_file
from pipeline.write.unit_book import set_value

ENTRY_ROWS = 1000  # rows under a register's header (beyond those carried over) prepared for entries
FIRST_DAY, LAST_DAY = 1, 73050  # date validation: Excel serials of 1900-01-01 and 2099-12-31
COVER_ENTRIES = ("填报人", "联系电话", "填报日期")  # cover values the clerk fills in
CARRIED_STOCKS = ("独生子女证",)  # stock figures carried over as they were (the rosters give the others)
UNLOCKED = Protection(locked=False)
THIN = Side(style="thin", color="808080")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
GUIDE_SHEET = "填表说明"


class TemplateError(Exception):
    """The template cannot be made (unknown unit, nothing to pre-fill from); the message says why."""


@dataclass(frozen=True)
class Template:
    path: Path
    unit: Unit
    period: str
    carried_from: str | None  # the period whose accepted return was carried over, if any


def fit_to_page_width(ws: Worksheet) -> None:
    """Printed across one landscape page, as many pages down as it needs."""
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def write_template(path: Path, registry: Registry, unit_code: str, period: str, *,
                   prefill_from: History | None = None) -> Template:
    """Write the return template of one unit and period; pre-filled from last month's accepted return if asked."""
    unit = registry.unit_by_code(unit_code) or registry.find_unit(unit_code)
    if unit is None:
        raise TemplateError(f"登记文件中没有代码为“{unit_code}”的村(居)。")
    form = load_form()
    data = blank_return(unit, period, form) if prefill_from is None else carried_return(prefill_from, unit,
                                                                                        period, form)
    due = deadline(period, registry.street.deadline_day)
    with atomic_file(Path(path)) as temp:
        write_return(temp, data)
        dress(temp, unit, period, due, form, carried=prefill_from is not None)
    return Template(Path(path), unit, period, shift(period, -1) if prefill_from is not None else None)


def make_template(path: Path, registry: Registry, unit_code: str, period: str, *,
                  history: Path | None = None) -> Template:
    """`pipeline template`: the template, pre-filled from the history store at `history` if one is given."""
    if history is None:
        return write_template(path, registry, unit_code, period)
    if not Path(history).is_file():
        raise TemplateError(f"找不到历史库 {history}:还没有运行过 pipeline run,无法预填。")
    with History(Path(history)) as store:
        return write_template(path, registry, unit_code, period, prefill_from=store)


# ---- what goes in ---------------------------------------------------------------------------
def template_columns(spec: SheetSpec) -> list[str]:
    """The columns a template prints: every column but the rates (never trusted) and birth orders."""
    return [c.name for c in spec.columns if c.type != "rate" and c.name not in ("一孩", "二孩", "多孩")]


def blank_return(unit: Unit, period: str, form: Form) -> ReturnData:
    """The cover filled in, the unit's groups listed, everything else blank."""
    monthly = pd.DataFrame({"小组": list(unit.groups)}).reindex(columns=template_columns(form.monthly))
    return ReturnData(cover(unit, period), monthly.astype(object),
                      pd.DataFrame(columns=template_columns(form.women)),
                      pd.DataFrame(columns=template_columns(form.floating)))


def cover(unit: Unit, period: str) -> dict[str, object]:
    return {"单位名称": unit.name, "单位代码": unit.code, "报告期": label_zh(period),
            "填报人": None, "联系电话": None, "填报日期": None}


def carried_return(history: History, unit: Unit, period: str, form: Form) -> ReturnData:
    """Next month's return as far as last month's accepted one tells it."""
    last = shift(period, -1)
    accepted = [r for r in history.returns(period=last, unit=unit.code) if r.status == "accepted"]
    if not accepted:
        raise TemplateError(f"{unit.name} {label_zh(last)} 没有已接收的月报,无法预填 {label_zh(period)} 的模板。")
    rid = accepted[-1].id
    roster = carried_roster(history.persons_of([rid], "roster"), form, period)
    floating = carried_floating(history.persons_of([rid], "floating"), form)
    monthly = carried_table(unit, history.figures_of([rid]), roster, floating, period, form)
    return ReturnData(cover(unit, period), monthly, roster, floating)


def _rows(persons: pd.DataFrame, spec: SheetSpec) -> pd.DataFrame:
    """Stored register records back to cells: dates as dates, counts as whole numbers, registered groups."""
    columns = template_columns(spec)
    records = [{**r, spec.group_column: g} for g, r in zip(persons["grp"], persons["record"])]
    frame = pd.DataFrame(records, columns=columns, dtype=object) if records else pd.DataFrame(columns=columns)
    for col in spec.columns:
        if col.name in frame and col.type == "date":
            frame[col.name] = frame[col.name].map(lambda v: dt.date.fromisoformat(v[:10]) if v else None)
        elif col.name in frame and col.type == "count":
            frame[col.name] = frame[col.name].map(lambda v: int(v) if v is not None and v == v else None)
    return frame.astype(object).where(frame.notna(), None)


def carried_roster(persons: pd.DataFrame, form: Form, period: str) -> pd.DataFrame:
    """Last month's women who stay, 变动 reset to 无 (超龄 if she is past 49 by the new month's end), 备注 cleared."""
    frame = _rows(persons, form.women)
    rules = form.roster
    frame = frame[~frame["变动"].isin(rules.exits)].reset_index(drop=True)
    end = month_end(period)
    ages = frame["身份证号"].map(lambda n: age_on(id_birth_date(n), end))
    frame["变动"] = [rules.over_age if a is not None and a > rules.max_age else "无" for a in ages]
    frame["备注"] = None
    return _numbered(frame)


def carried_floating(persons: pd.DataFrame, form: Form) -> pd.DataFrame:
    """Last month's floating persons still present (no 流出日期)."""
    frame = _rows(persons, form.floating)
    return _numbered(frame[frame["流出日期"].isna()].reset_index(drop=True))


def _numbered(frame: pd.DataFrame) -> pd.DataFrame:
    if "序号" in frame:
        frame["序号"] = list(range(1, len(frame) + 1))
    return frame


def carried_table(unit: Unit, figures: pd.DataFrame, roster: pd.DataFrame, floating: pd.DataFrame,
                  period: str, form: Form) -> pd.DataFrame:
    """月报 rows: 期初人口 = last 期末人口, stocks as the carried rosters give them, changes blank."""
    last = figures.set_index(["grp", "name"])["value"]
    counts = register_figures(unit, roster, floating, period, form)
    rows = []
    for group in unit.groups:
        row: dict[str, object] = {"小组": group, "期初人口": _whole(last.get((group, "期末人口")))}
        row.update({name: _whole(last.get((group, name))) for name in CARRIED_STOCKS})
        row.update({name: int(counts.at[group, name]) if group in counts.index and name in counts else 0
                    for name in ROSTER_FIGURES + REGISTER_FIGURES})
        rows.append(row)
    return pd.DataFrame(rows).reindex(columns=template_columns(form.monthly)).astype(object)


def _whole(value: object) -> int | None:
    return None if value is None or value != value else int(value)


def register_figures(unit: Unit, roster: pd.DataFrame, floating: pd.DataFrame, period: str,
                     form: Form) -> pd.DataFrame:
    """Per group, the table's roster and register figures, counted by the validator's own rules."""
    key = {0: ReturnKey(0, unit.code, unit.name, period, "", unit.groups)}
    women = roster.assign(**{RET: 0, GROUP: roster["小组"]})
    people = floating.assign(**{RET: 0, GROUP: floating["小组"]})
    tables = [roster_counts(women, form).droplevel(0) if len(women) else None,
              register_counts(people, key, form).droplevel(0) if len(people) else None]
    found = [t for t in tables if t is not None]
    return pd.concat(found, axis=1).fillna(0) if found else pd.DataFrame()


# ---- what makes mistakes hard ---------------------------------------------------------------
def dress(path: Path, unit: Unit, period: str, due: dt.date, form: Form, *, carried: bool) -> None:
    """Add validations, formats, protection and the 填表说明 sheet to a written return."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = openpyxl.load_workbook(path)
    dress_cover(book[form.cover.name])
    dress_table(book[form.monthly.name], form.monthly, unit, monthly=True)
    dress_table(book[form.women.name], form.women, unit, monthly=False)
    dress_table(book[form.floating.name], form.floating, unit, monthly=False)
    write_guide(book.create_sheet(GUIDE_SHEET), unit, period, due, form, carried)
    book.active = 0
    book.save(path)


def dress_cover(ws: Worksheet) -> None:
    """The clerk fills 填报人, 联系电话 and 填报日期; the unit and period stay as given."""
    for row in ws.iter_rows(min_col=1, max_col=1):
        label = row[0].value
        if label in COVER_ENTRIES:
            cell = ws.cell(row[0].row, 2)
            cell.protection, cell.border = UNLOCKED, BOX
            cell.number_format = "yyyy-mm-dd" if label == "填报日期" else "@"
            if label == "填报日期":
                _validate(ws, cell.coordinate, _date_rule())
    _protect(ws, registers=False)


def header_row(ws: Worksheet, spec: SheetSpec) -> int:
    """The row of the sheet's header (the one naming the form's columns)."""
    names = {normalise_label(c.name) for c in spec.columns}
    for row in ws.iter_rows(min_row=1, max_row=30):
        if sum(normalise_label(c.value) in names for c in row if c.value is not None) >= 2:
            return row[0].row
    raise ValueError(f"no header in {ws.title}")


def dress_table(ws: Worksheet, spec: SheetSpec, unit: Unit, *, monthly: bool) -> None:
    """Per column: format, validation and unlocked entry cells below the locked header."""
    top = header_row(ws, spec)
    columns = {normalise_label(ws.cell(top, c).value): c for c in range(1, ws.max_column + 1)}
    last = _last_entry_row(ws, top, spec, monthly)
    for col in spec.columns:
        c = columns.get(normalise_label(col.name))
        if c is None:
            continue
        letter = get_column_letter(c)
        locked = monthly and col.type == "group"  # the unit's groups are listed, not typed
        _format_column(ws, letter, col, top + 1, last, locked)
        rule = _rule(col, unit)
        if rule is not None and not locked:
            _validate(ws, f"{letter}{top + 1}:{letter}{last}", rule)
    ws.freeze_panes = ws.cell(top + 1, 2 if monthly else 1)
    ws.print_title_rows = f"{top}:{top}"
    fit_to_page_width(ws)
    _protect(ws, registers=not monthly)


def _last_entry_row(ws: Worksheet, top: int, spec: SheetSpec, monthly: bool) -> int:
    """The last row prepared for entries: the last group row, or well below a register's rows."""
    if not monthly:
        return max(ws.max_row, top) + ENTRY_ROWS
    r = top + 1
    while ws.cell(r + 1, 1).value not in (None, spec.total_label):
        r += 1
    return r


def _format_column(ws: Worksheet, letter: str, col: ColumnSpec, first: int, last: int, locked: bool) -> None:
    """Number format and protection for the column's entry cells (and for cells typed later)."""
    fmt = {"id": "@", "phone": "@", "text": "@", "date": "yyyy-mm-dd", "count": "0"}.get(col.type, "General")
    dim = ws.column_dimensions[letter]
    dim.number_format = fmt
    if not locked:
        dim.protection = UNLOCKED
    existing = ws.max_row if ws.max_row < last else last
    for r in range(first, existing + 1):
        cell = ws[f"{letter}{r}"]
        cell.number_format = fmt
        cell.border = BOX
        if not locked:
            cell.protection = UNLOCKED


def _rule(col: ColumnSpec, unit: Unit) -> DataValidation | None:
    """The Excel validation that keeps a column's entries to what the form allows."""
    if col.type == "code":
        return _list_rule(col.list, f"“{col.name}”只能从下拉列表中选择")
    if col.type == "group":
        return _list_rule(unit.groups, f"“{col.name}”只能选本村(居)登记的小组")
    if col.type == "count":
        return DataValidation(type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=True,
                              showErrorMessage=True, errorTitle="输入有误", error=f"“{col.name}”应填不小于0的整数")
    if col.type == "id":
        return DataValidation(type="textLength", operator="equal", formula1="18", allow_blank=True,
                              showErrorMessage=True, errorTitle="输入有误", error="身份证号应为18位",
                              showInputMessage=True, promptTitle="身份证号", prompt="18位,末位可为X;本列已设为文本格式")
    if col.type == "phone":
        return DataValidation(type="textLength", operator="between", formula1="11", formula2="14", allow_blank=True,
                              showErrorMessage=True, errorTitle="输入有误",
                              error="联系电话应为11位手机号,或带区号的固定电话(如 0951-6012345)")
    if col.type == "date":
        return _date_rule()
    return None


def _list_rule(values: tuple[str, ...], error: str) -> DataValidation:
    return DataValidation(type="list", formula1='"' + ",".join(values) + '"', allow_blank=True,
                          showErrorMessage=True, errorTitle="输入有误", error=f"{error}:{'、'.join(values)}")


def _date_rule() -> DataValidation:
    return DataValidation(type="date", operator="between", formula1=str(FIRST_DAY), formula2=str(LAST_DAY),
                          allow_blank=True, showErrorMessage=True, errorTitle="输入有误",
                          error="请输入日期,如 2026-11-03")


def _validate(ws: Worksheet, ref: str, rule: DataValidation) -> None:
    rule.add(ref)
    ws.add_data_validation(rule)


def _protect(ws: Worksheet, *, registers: bool) -> None:
    """Locked cells (headers, groups, formulas) protected, no password; widths and filters stay free."""
    p = ws.protection
    p.sheet = True
    p.formatColumns = p.formatRows = p.autoFilter = p.sort = False
    if registers:
        p.insertRows = p.deleteRows = False


# ---- 填表说明 ---------------------------------------------------------------------------------
def guide_lines(unit: Unit, period: str, due: dt.date, form: Form, carried: bool) -> list[str]:
    """The short instructions the clerk reads (one paragraph a line)."""
    lines = [
        f"{unit.name} {label_zh(period)} 人口与计划生育月报 填表说明",
        f"报送截止日期:{due.year}年{due.month}月{due.day}日。填好后保存,把本文件放进街道的共享文件夹即可,文件名可以自己起。",
        "1. 封面:单位名称、单位代码和报告期已经填好,请填写填报人、联系电话和填报日期。",
        "2. 月报:每个小组一行,小组名称已列好;人数只能填不小于0的整数,没有的填0,不要空着。"
        "合计行是公式,会自动计算,不用填。",
        "   期末人口 = 期初人口 + 出生 + 往年出生补报 − 死亡 + 迁入 − 迁出。"
        "已婚育龄妇女、节育措施、怀孕应与育龄妇女花名册一致,流动人口各项应与流动人口登记一致。",
        f"3. {form.women.name}:每位已婚育龄妇女一行。身份证号一列已设为文本格式,请完整输入18位。"
        f"带下拉箭头的列请从列表中选择。本月迁出、死亡、超龄、离异丧偶的,本月仍保留一行并在“变动”中选填,下月不再列出。",
        f"4. {form.floating.name}:每位流动人口一行。离开的人本月填上流出日期,下月不再列出。"
        "节育措施只对已婚育龄妇女填写,其他人空着。",
        "5. 日期写成 2026-11-03 这样的格式。表头和公式已锁定(工作表保护,没有密码),填写区域不受影响。",
    ]
    if carried:
        lines.append(f"6. 本表已按 {label_zh(shift(period, -1))} 已接收的月报预填:期初人口为上月期末人口;"
                     "花名册保留上月在册的人,“变动”已改为“无”(年满50岁的已改为“超龄”);"
                     "花名册给出的人数和独生子女证已填好。请只修改本月有变化的地方,并填写本月的出生、死亡、迁入、迁出和期末人口。")
    return lines


def write_guide(ws: Worksheet, unit: Unit, period: str, due: dt.date, form: Form, carried: bool) -> None:
    """填表说明: a title and a few numbered paragraphs."""
    ws.column_dimensions["A"].width = 110
    for r, text in enumerate(guide_lines(unit, period, due, form, carried), start=1):
        cell = ws.cell(r, 1)
        set_value(cell, text)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        if r == 1:
            cell.font = Font(bold=True, size=14)
