"""The catalogue keeps the docs honest: every code the rules can emit has both messages, and they fill."""

from __future__ import annotations

import ast
import codecs
import re
import string
from pathlib import Path

from conftest import RUN_DAY, clean_return
from pipeline.findings import Finding, catalogue, finding
from pipeline.forms import load_form
from pipeline.returnbook import write_return
from pipeline.run import validate_files
from pipeline.validate.cells import schema_for

PIPELINE = Path(__file__).resolve().parent.parent / "pipeline"
# Modules that only present findings or write workbooks emit no codes; ods.py reads OpenDocument's
# element names (table-cell, number-rows-spanned), which are kebab-case too.
NOT_RULES = ("write", "cli.py", "demo.py", "demo_data.py", "template.py", "returnbook.py", "ods.py")
KEBAB = re.compile(r"^[a-z]+(-[a-z]+)+$")
# A kebab-case literal in a rule module is presumed to be a code; those that are not are listed here.
NOT_CODES = {"x-gbk"}  # an HTML charset name Python's codecs do not know
FIELDS = {name for name in Finding.__dataclass_fields__}


def rule_modules() -> list[Path]:
    return [p for p in PIPELINE.rglob("*.py") if not set(p.relative_to(PIPELINE).parts) & set(NOT_RULES)]


def constants(path: Path) -> list[ast.Constant]:
    return [n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def finding_calls() -> set[str]:
    """Codes named literally in finding("…", …) calls."""
    codes = set()
    for path in rule_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "finding" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                codes.add(node.args[0].value)
    return codes


def pandera_checks() -> set[str]:
    """Codes the cell schema's checks are named after (a failed not-null check is blank-required)."""
    names = {"blank-required"}
    for spec in load_form().sheets.values():
        if spec.layout == "table":
            names |= {check.name for column in schema_for(spec).columns.values() for check in column.checks}
    return names


def kebab_literals() -> set[str]:
    """Codes passed along in variables (PART_OF keys, date codes, header problems): kebab-case literals."""
    found = set()
    for path in rule_modules():
        for node in constants(path):
            if KEBAB.match(node.value) and not _is_codec(node.value) and node.value not in NOT_CODES:
                found.add(node.value)
    return found


def _is_codec(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def test_every_code_the_rules_emit_is_catalogued():
    emitted = finding_calls() | pandera_checks() | kebab_literals()
    assert len(finding_calls()) > 10 and "not-in-list" in pandera_checks()
    assert emitted - set(catalogue()) == set()


def test_every_catalogued_code_is_emitted_somewhere():
    literals = {n.value for p in rule_modules() for n in constants(p)}
    assert set(catalogue()) - literals - pandera_checks() == set()


def test_both_messages_exist_and_name_only_finding_fields():
    for code, rule in catalogue().items():
        for text in (rule.zh, rule.en):
            assert text.strip(), code
            used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
            assert used <= FIELDS, (code, used - FIELDS)


def test_messages_fill_without_leftover_braces():
    sample = {"field": "期末人口", "value": "3,412", "expected": "3,414", "sheet": "月报", "cell": "H4"}
    for code in catalogue():
        f = finding(code, **sample)
        for text in (f.message, f.message_en):
            assert "{" not in text and "}" not in text, (code, text)
            assert text.strip(), code


def test_messages_name_the_values_involved(tmp_path, street):
    data = clean_return(street)
    data.monthly.at[1, "期末人口"] += 1
    data.roster.at[0, "节育措施"] = "上环术"
    path = write_return(tmp_path / "甲村.xlsx", data)
    [(_, found)] = validate_files([path], street, None, RUN_DAY)
    by_code = {f.code: f for f in found}
    assert by_code["population-balance"].message.startswith(
        "期末人口 502 ≠ 期初 500 + 出生 0 − 死亡 1 + 迁入 3 − 迁出 1 = 501")
    assert "502" in by_code["population-balance"].message_en and "501" in by_code["population-balance"].message_en
    not_in_list = by_code["not-in-list"]
    assert "上环术" in not_in_list.message and "女扎" in not_in_list.message
    assert "上环术" in not_in_list.message_en and "女扎" in not_in_list.message_en
