"""The street's error report: every finding of the period, one row each, ready to filter."""

from __future__ import annotations

from pathlib import Path

from pipeline.findings import Finding
from pipeline.period import PeriodState
from pipeline.periods import label_zh
from pipeline.write.privacy import for_street
from pipeline.write.safe import atomic_file, new_workbook, print_one_page_wide, write_cell
from pipeline.status import STATUS_ZH

COLUMNS = [("严重程度", 8), ("单位代码", 14), ("单位名称", 12), ("文件", 28), ("工作表", 10), ("单元格", 8),
           ("行", 6), ("列", 5), ("项目", 12), ("填写值", 22), ("应为", 30), ("说明", 60), ("代码", 22)]


def finding_row(f: Finding, lang: str = "zh") -> list:
    return [f.severity.zh, f.unit, f.unit_name, f.file, f.sheet, f.cell, f.row, f.column, f.field, f.value,
            f.expected, f.message_en if lang == "en" else f.message, f.code]


def write_street_report(state: PeriodState, path: Path, findings: list[Finding] | None = None) -> None:
    """`findings`: the period's findings as the street sees them (masked), if already made."""
    findings = for_street(state.findings, state.registry.settings.mask_ids) if findings is None else findings
    with atomic_file(path) as temp:
        book = new_workbook(temp)
        title = book.add_format({"bold": True, "font_size": 14})
        head = book.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
        ws = book.add_worksheet("全部问题")
        write_cell(ws, 0, 0, f"{state.registry.street.name} {label_zh(state.period)} 月报审核问题清单", title)
        write_cell(ws, 1, 0, f"共 {len(findings)} 条:错误 {sum(f.blocks for f in findings)} 条(须改正后重报),"
                             f"其余为警告或提示。身份证号已部分隐藏。")
        for c, (name, width) in enumerate(COLUMNS):
            write_cell(ws, 3, c, name, head)
            ws.set_column(c, c, width)
        for r, f in enumerate(findings, start=4):
            for c, value in enumerate(finding_row(f, state.registry.settings.lang)):
                write_cell(ws, r, c, value)
        ws.autofilter(3, 0, 3 + max(len(findings), 1), len(COLUMNS) - 1)
        ws.freeze_panes(4, 0)
        print_one_page_wide(ws, header_row=3)
        by_unit = book.add_worksheet("按单位统计")
        for c, name in enumerate(["单位代码", "单位名称", "状态", "错误", "警告", "提示"]):
            write_cell(by_unit, 0, c, name, head)
        for r, s in enumerate(state.submissions, start=1):
            row = [s.unit.code, s.unit.name, STATUS_ZH.get(s.status, s.status),
                   s.count("error"), s.count("warning"), s.count("info")]
            for c, value in enumerate(row):
                write_cell(by_unit, r, c, value)
        by_unit.set_column(0, 2, 14)
        by_unit.freeze_panes(1, 0)
        print_one_page_wide(by_unit, header_row=0)
        book.close()
