"""Cells that used to stop the whole run now give findings (bad data never raises)."""

from __future__ import annotations

import pytest
from stdnum.cn import ric

from conftest import PERIOD, RUN_DAY, clean_return
from pipeline.returnbook import write_return
from pipeline.run import validate_files


def found(tmp_path, street, data) -> list[tuple[str, str, str, str]]:
    path = write_return(tmp_path / "甲村.xlsx", data)
    [(_, findings)] = validate_files([path], street, PERIOD, RUN_DAY)
    return sorted((f.code, f.severity.value, f.sheet, f.cell) for f in findings)


def test_a_blank_id_number_is_a_blank_cell(tmp_path, street):
    data = clean_return(street)
    data.roster.at[0, "身份证号"] = None
    assert ("blank-required", "error", "育龄妇女", "C3") in found(tmp_path, street, data)


def test_an_unknown_county_of_a_known_province_is_an_unknown_region(tmp_path, street):
    data = clean_return(street)
    body = "119900" + data.roster.at[0, "身份证号"][6:17]  # 11: 北京市; 9900: no such county
    data.roster.at[0, "身份证号"] = body + ric.calc_check_digit(body + "0")
    assert found(tmp_path, street, data) == [("id-region", "warning", "育龄妇女", "C3")]


def test_a_blank_group_is_only_a_blank_cell(tmp_path, street):
    data = clean_return(street)
    data.roster.at[0, "小组"] = None
    result = found(tmp_path, street, data)
    assert ("blank-required", "error", "育龄妇女", "D3") in result
    assert not [f for f in result if f[0] == "unknown-group"]


def test_id_codes_are_id_problems_codes_whether_checked_now_or_remembered():
    import random

    from pipeline.validate import cells

    rng = random.Random(7)
    sound = [body + ric.calc_check_digit(body + "0")
             for body in (f"{area}{year}{month:02d}{day:02d}{rng.randrange(1000):03d}"
                          for area, year, month, day in [("110101", 1990, 3, 1), ("640102", 2000, 2, 29),
                                                         ("440305", 1985, 12, 31), ("999999", 1990, 3, 1)])]
    texts = sound + [sound[0][:17] + ("1" if sound[0][17] != "1" else "2"), "640102199002300012", "64010219900",
                     "６４０１０２" + sound[1][6:], sound[2].lower(), " " + sound[2][:9] + " " + sound[2][9:],
                     "11010119900301001Y", sound[0]]
    expected = [problem[0] if (problem := cells.id_problem(t)) else None for t in texts]
    assert "id-checksum" in expected and "id-birthdate" in expected and "id-region" in expected
    assert cells.id_codes(texts) == expected
    with cells.remembering_id_codes():
        assert cells.id_codes(texts) == expected
        assert set(cells._remembered_id_codes) == set(texts)
        assert cells.id_codes(list(reversed(texts))) == list(reversed(expected))  # remembered
    assert cells._remembered_id_codes is None  # forgotten after the batch


def test_a_county_is_known_in_the_years_stdnum_knows_it():
    """The remembered answer per county and birth year is stdnum's own for every ID of them."""
    from faker import Faker

    from pipeline.validate import cells

    fake = Faker("zh_CN")
    fake.seed_instance(11)
    numbers = [fake.ssn() for _ in range(300)]
    # 崇文区 (110103) was merged away in 2010: known for those born up to 2010, not after
    numbers += [f"110103{year}0601123" for year in (1990, 2010, 2011, 2020)] + ["11990019900601123"]

    def stdnum_knows(number: str) -> bool:
        try:
            ric.get_birth_place(number)
        except Exception:
            return False
        return True

    cells._county_known.cache_clear()
    answers = [cells._known_region(n) for n in numbers]
    assert answers == [stdnum_knows(n) for n in numbers]
    assert answers[-5:] == [True, True, False, False, False]
    assert cells._known_region(numbers[0]) is answers[0] and cells._county_known.cache_info().hits >= 1


def test_a_group_written_1组_or_第二组_is_the_registered_group_it_can_only_be(tmp_path, street):
    """一组 written as 1组, 第一组 or 一 was an unknown group (an error on every row); it is 一组 unless another
    group of the unit shares its number (一组 and 一社): then which one is not ours to guess."""
    import dataclasses

    data = clean_return(street)
    data.monthly["小组"] = data.monthly["小组"].map({"一组": "1组", "二组": "第二组"})
    data.roster["小组"] = data.roster["小组"].map({"一组": "一", "二组": "第2组"})
    assert found(tmp_path, street, data) == []
    u01 = dataclasses.replace(street.units[0], groups=("一组", "二组", "一社"))
    shared = dataclasses.replace(street, units=(u01, *street.units[1:]))
    result = found(tmp_path, shared, data)
    unknown = [(sheet, cell) for code, _, sheet, cell in result if code == "unknown-group"]
    ones = (data.roster["小组"] == "一").sum()
    assert ones and unknown == [("月报", "A4")] + [("育龄妇女", f"D{3 + i}") for i in range(ones)]  # 第二组 still is 二组


def test_dates_as_clerks_type_them_are_read_and_a_run_of_digits_is_no_date(tmp_path, street):
    """2012。5。1 (a Chinese input method's dot), 2012年5月1号, a text export's 2012-05-01 00:00:00 and the
    number 20120501 are dates; "2012 5 1" read as the Excel serial 201251 was a date in 2451 ("in the future")."""
    data = clean_return(street)
    data.roster["结婚日期"] = data.roster["结婚日期"].astype(object)
    for row, typed in enumerate(["2012。5。1", "2012年5月1号", "2012-05-01 00:00:00", 20120501]):
        data.roster.at[row, "结婚日期"] = typed
    assert found(tmp_path, street, data) == []
    data.roster.at[0, "结婚日期"] = "2012 5 1"
    assert found(tmp_path, street, data) == [("date-unparseable", "error", "育龄妇女", "E3")]


def test_a_landline_with_its_area_code_is_a_phone_number_a_bare_local_one_is_not(tmp_path, street):
    """A floating person's contact may be a landline: 0951-6012345 blocked the whole return as "not a mobile"."""
    data = clean_return(street)
    assert len(data.floating) >= 4
    for row, typed in enumerate(["0951-6012345", "010 1234 5678", "+86 139 0000 0000", "139-0000-0000"]):
        data.floating.at[row, "联系电话"] = typed
    assert found(tmp_path, street, data) == []
    data.floating.at[0, "联系电话"] = "6012345"  # no area code: a mobile with digits lost, or a local line
    assert [f[0] for f in found(tmp_path, street, data)] == ["phone-invalid"]


def test_an_id_number_is_read_without_the_characters_no_one_sees(tmp_path, street):
    """A zero-width space or a no-break space pasted with an ID (from a web page or WeChat) made it "19 digits"
    on a screen that shows 18, and 上环 not 上环; read without them, it is the same person as the plain number."""
    data = clean_return(street)
    number = data.roster.at[0, "身份证号"]
    data.roster.at[0, "身份证号"] = "\u00a0" + number[:6] + "\u200b" + number[6:] + "\ufeff"
    data.roster.at[0, "节育措施"] = "\u200b" + data.roster.at[0, "节育措施"]
    data.roster.at[1, "小组"] = data.roster.at[1, "小组"] + "\u200d"
    assert found(tmp_path, street, data) == []
    data.roster.at[1, "身份证号"] = number
    assert ("duplicate-id", "error", "育龄妇女", "C4") in found(tmp_path, street, data)


def test_listed_values_written_in_other_words_are_read_as_the_values(tmp_path, street):
    """女性 for 女, 放环 for 上环, 怀孕 for 孕中 (schemas/template_v1.toml [list_aliases]) were "not in the
    list", and the counts that follow from them disagreed with the table as well."""
    data = clean_return(street)
    words = {"节育措施": {"上环": "放环", "无": "未采取措施"}, "孕情": {"孕中": "怀孕", "无": "未孕"}}
    for column, aliases in words.items():
        data.roster[column] = data.roster[column].map(lambda v, a=aliases: a.get(v, v))
    data.floating["性别"] = data.floating["性别"].map({"女": "女性", "男": "男性"})
    data.floating["婚姻状况"] = data.floating["婚姻状况"].replace({"已婚": "初婚"})
    assert (data.roster["孕情"] == "怀孕").any() and (data.floating["性别"] == "男性").any()
    assert found(tmp_path, street, data) == []
    data.roster.at[0, "节育措施"] = "上了环"  # not a word the form knows: she is asked, not guessed for
    assert [f[0] for f in found(tmp_path, street, data)][:1] == ["not-in-list"]


def test_a_list_alias_for_a_value_not_in_its_list_stops_the_form_loading(monkeypatch):
    import pipeline.forms as forms

    raw = forms.load_schema_file(forms.TEMPLATE_FILE)
    broken = dict(raw, list_aliases={"性别": {"女性": "妇女"}})
    monkeypatch.setattr(forms, "load_schema_file", lambda name: broken)
    with pytest.raises(ValueError, match="女性 = 妇女 不在列表“性别”中"):
        forms.load_form.__wrapped__()


@pytest.mark.parametrize("closing", [["合计", "共 3 人"], [None, "合计:3人"], ["合计", 3], ["共计", "3人"],
                                     ["制表人:张三", None, "审核人:李四"], ["填报日期:", "2026年11月3日"]])
def test_a_registers_closing_line_is_no_person(tmp_path, street, closing):
    """A count or the signatures under a register ("合计 共3人", "制表人:张三 审核人:李四") were read as a
    person with no ID, group or dates: seven errors for a line every paper register ends with."""
    import pandas as pd

    data = clean_return(street)
    line = dict(zip(["序号", "姓名", "身份证号"], closing))
    data.roster = pd.concat([data.roster, pd.DataFrame([line])], ignore_index=True)
    data.floating = pd.concat([data.floating, pd.DataFrame([line])], ignore_index=True)
    assert found(tmp_path, street, data) == []


def test_a_line_starting_like_a_closing_one_with_a_persons_data_is_still_read(tmp_path, street):
    data = clean_return(street)
    data.roster["序号"] = data.roster["序号"].astype(object)
    data.roster.at[0, "序号"] = "合计"  # a 序号 that is no number, on a woman's row: still her row, checked
    data.roster.at[0, "节育措施"] = "上了环"
    assert ("not-in-list", "error", "育龄妇女", "G3") in found(tmp_path, street, data)


def test_signatures_and_a_date_under_the_monthly_table_are_no_group(tmp_path, street):
    import datetime as dt

    import pandas as pd

    data = clean_return(street)
    first, second, third = list(data.monthly.columns)[:3]
    lines = [{first: "填报日期:", second: dt.date(2026, 11, 3)}, {first: "制表人:张三", third: "审核人:李四"}]
    data.monthly = pd.concat([data.monthly, pd.DataFrame(lines)], ignore_index=True)
    assert found(tmp_path, street, data) == []


def test_a_header_with_its_unit_in_brackets_is_the_column(tmp_path, street):
    """期初人口(人), 出生(人), 结婚日期(年月日): statistical forms write the unit after the label; each was a missing
    column (and the cover's 联系电话(手机) an unread label)."""
    data = clean_return(street)
    data.monthly = data.monthly.rename(columns={"期初人口": "期初人口(人)", "出生": "出生(人)", "节育措施": "节育措施(人)"})
    data.roster = data.roster.rename(columns={"结婚日期": "结婚日期(年月日)"})
    assert found(tmp_path, street, data) == []
    data.monthly = data.monthly.rename(columns={"期初人口(人)": "期初户数(户)"})  # another column: still missing
    assert [f[0] for f in found(tmp_path, street, data)] == ["missing-column"]
