"""A street (or district) of N units' monthly returns, shaped like real ones, for the benchmarks.

    python -m benchmarks.generate 1000 --out bench-data            # → bench-data/n1000-…/
    python -m benchmarks.generate 100 --roster-rows 2000 --out bench-data

Each unit has 4–25 groups of 30–300 people, a roster of 300–700 married women (or
`--roster-rows`), a floating register of 50–200 persons, and a 月报 whose every figure
agrees with its registers: a clean return, so a run accepts every one (`--faulty` makes
a share of them carry two clerk mistakes: a wrong ID check digit, a 10-digit phone).

Writing 10,000 workbooks with xlsxwriter would take most of an hour, so a few template
returns are written once (with `pipeline.returnbook.write_return`, the demo's writer)
with placeholders for the unit and for every ID number; each unit's file is then the
template's zip members copied as already-compressed bytes, with only the shared-strings
part rebuilt (unit name, code, fresh ID numbers). ID numbers stay valid (region, birth
date, check digit), keep each person's age and sex, and are unique across the street, so
the cross-unit duplicate rule stays quiet. A generated folder is cached under --out.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import io
import json
import math
import random
import re
import struct
import sys
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd

from pipeline.demo_data import FLOATING_COLUMNS, MONTHLY_COLUMNS, ROSTER_COLUMNS
from pipeline.returnbook import ReturnData, write_return

PERIOD = "2026-10"
TEMPLATES = 8
UNIT_TOKEN, CODE_TOKEN, PHONE_TOKEN = "§U§", "§C§", "§P§"
ID_TOKEN = re.compile(r"^§I(\d+)§$")
SERIALS = 500  # three-digit sequence numbers of one sex (digit 17's parity is the sex)
DAYS = 365  # birth days within one year of age
STREET = {"code": "640104001000", "name": "基准街道", "district": "兴庆区", "deadline_day": 5}
MEASURES = {"上环": 12, "女扎": 5, "男扎": 1, "皮埋": 2, "药具": 4, "其他": 1}
JOBS = {"务工": 11, "经商": 5, "务农": 1, "无业": 2, "其他": 1}
ORIGINS = ["宁夏回族自治区固原市西吉县", "宁夏回族自治区吴忠市同心县", "甘肃省临夏回族自治州临夏县",
           "甘肃省兰州市永登县", "陕西省宝鸡市岐山县", "四川省成都市金堂县", "山西省太原市清徐县"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN_F = ["秀英", "桂英", "秀兰", "玉兰", "桂兰", "淑珍", "丽", "敏", "静", "燕", "艳", "娟", "霞", "芳", "婷", "玲",
           "雪梅", "海燕", "晓红", "春花", "丽娟", "红霞", "小燕", "慧", "倩", "欣怡", "梦瑶", "佳琪"]
GIVEN_M = ["伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "刚", "平", "辉", "鹏", "华", "飞", "建国",
           "建华", "志强", "海涛", "文博", "子轩", "浩然", "宇航"]
NAME_CHARS = "安宝昌春大德东丰福富光广贵国海和红华吉家建金康乐利隆满美明南宁平庆荣瑞润盛泰祥新兴永长"
NUMERALS = "一二三四五六七八九十"


# ---- IDs --------------------------------------------------------------------------------

@cache
def area_codes() -> tuple[str, ...]:
    """County codes that stdnum accepts for any birth year (no date range in its table)."""
    import stdnum.cn
    codes, province = [], ""
    for line in (Path(stdnum.cn.__file__).parent / "loc.dat").read_text(encoding="utf-8").splitlines():
        if re.match(r"^\d{2} ", line):
            province = line[:2]
        elif (m := re.match(r"^  (\d{4}) county=\"([^\"]*)\"", line)) and province:
            if not m.group(2).startswith("[") and not m.group(1).endswith("00") and "," not in m.group(2):
                codes.append(province + m.group(1))
    return tuple(codes)


_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_CHECK = np.array(list("10X98765432"))


def make_ids(ages: np.ndarray, female: np.ndarray, first: int, end: dt.date) -> list[str]:
    """Valid ID numbers for persons of the given ages (at `end`) and sexes, numbered from `first`.

    Person g of the street gets sequence g % 500, a birth day (g // 500) % 365 days before
    the latest birthday of their age, and area (g // 182,500): distinct g never give the
    same number, and the age on `end` is exactly the one asked for.
    """
    g = first + np.arange(len(ages), dtype=np.int64)
    areas = np.array(area_codes())
    if int(g[-1]) >= SERIALS * DAYS * len(areas) if len(g) else False:
        raise ValueError("too many persons for unique generated ID numbers")
    latest = np.array([_years_before(end, int(a)) for a in ages], dtype="datetime64[D]")
    births = latest - (g // SERIALS % DAYS).astype("timedelta64[D]")
    ymd = np.char.replace(np.datetime_as_string(births, unit="D"), "-", "")
    serial = 2 * (g % SERIALS) + np.where(female, 0, 1)
    body = np.char.add(np.char.add(areas[g // (SERIALS * DAYS)], ymd), np.char.zfill(serial.astype(str), 3))
    digits = np.frombuffer("".join(body.tolist()).encode(), dtype=np.uint8).reshape(len(body), 17) - 48
    check = _CHECK[(digits.astype(np.int64) @ _WEIGHTS) % 11]
    return np.char.add(body, check).tolist()


@cache
def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def wrong_check_digit(number: str) -> str:
    digits = "0123456789X"
    return number[:-1] + digits[(digits.index(number[-1]) + 1) % len(digits)]


# ---- one template return ----------------------------------------------------------------

@dataclass
class Person:
    age: int
    female: bool


@dataclass
class Template:
    """A written return with placeholders, split so a unit's copy is cheap to make."""

    kind: str  # 村 | 社区
    groups: tuple[str, ...]
    persons: list[Person]  # ID placeholder k is persons[k]
    members: list[tuple[str, int, bytes, int]]  # (name, crc32, deflated bytes, size) of the fixed parts
    sst_parts: list[str] = field(default_factory=list)  # sharedStrings.xml cut at the slots below
    id_slots: list[tuple[int, int]] = field(default_factory=list)  # (part index, person index)
    unit_slots: list[tuple[int, str]] = field(default_factory=list)  # (part index, XML with tokens)
    first_roster_id: int = 0  # placeholder index of the roster's first ID (for --faulty)


def group_names(kind: str, n: int) -> tuple[str, ...]:
    names = [chinese_number(i) for i in range(1, n + 1)]
    return tuple(f"第{x}居民小组" if kind == "社区" else f"{x}组" for x in names)


def chinese_number(n: int) -> str:
    if n <= 10:
        return NUMERALS[n - 1]
    tens, ones = divmod(n, 10)
    return (NUMERALS[tens - 1] if tens > 1 else "") + "十" + (NUMERALS[ones - 1] if ones else "")


def _day(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randint(0, max(0, (last - first).days)))


def _name(rng: random.Random, female: bool) -> str:
    return rng.choice(SURNAMES) + rng.choice(GIVEN_F if female else GIVEN_M)


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _phone(rng: random.Random) -> str:
    return f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"


def period_bounds(period: str) -> tuple[dt.date, dt.date]:
    year, month = int(period[:4]), int(period[5:])
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def template_data(rng: random.Random, kind: str, roster_rows: int, floating_rows: int,
                  period: str) -> tuple[ReturnData, list[Person], int]:
    """A clean return with placeholders; the persons behind the ID placeholders; the phone's slot."""
    start, end = period_bounds(period)
    n_groups = max(1, min(30, math.ceil(roster_rows / 85) + rng.randint(0, 4)))
    groups = group_names(kind, n_groups)
    persons: list[Person] = []

    def person_id(age: int, female: bool) -> str:
        persons.append(Person(age, female))
        return f"§I{len(persons) - 1}§"

    women_of = _spread(roster_rows, n_groups, rng)
    floating_of = _spread(floating_rows, n_groups, rng)
    roster, floating, monthly = [], [], []
    for group, n_women, n_floating in zip(groups, women_of, floating_of):
        women = [_woman(rng, group, start, end, person_id) for _ in range(n_women)]
        people = [_floater(rng, group, start, end, person_id) for _ in range(n_floating)]
        roster += women
        floating += people
        monthly.append(_group_row(rng, group, women, people, start, end))
    roster_frame = pd.DataFrame(roster, columns=ROSTER_COLUMNS)
    roster_frame["序号"] = range(1, len(roster_frame) + 1)
    floating_frame = pd.DataFrame(floating, columns=FLOATING_COLUMNS)
    floating_frame["序号"] = range(1, len(floating_frame) + 1)
    phone_row = next(i for i, p in enumerate(floating) if p["联系电话"])
    floating_frame.at[phone_row, "联系电话"] = PHONE_TOKEN
    cover = {"单位名称": UNIT_TOKEN, "单位代码": CODE_TOKEN, "报告期": period, "填报人": _name(rng, True),
             "联系电话": _phone(rng), "填报日期": end + dt.timedelta(days=3)}
    data = ReturnData(cover, pd.DataFrame(monthly, columns=MONTHLY_COLUMNS), roster_frame, floating_frame)
    return data, persons, int(ID_TOKEN.match(roster[0]["身份证号"]).group(1))


def _spread(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` in `parts` shares, none empty, uneven like real groups."""
    weights = [rng.uniform(0.5, 1.5) for _ in range(parts)]
    out = [max(1, int(total * w / sum(weights))) for w in weights]
    while sum(out) != total:
        i = rng.randrange(parts)
        if sum(out) < total:
            out[i] += 1
        elif out[i] > 1:
            out[i] -= 1
    return out


def _woman(rng: random.Random, group: str, start: dt.date, end: dt.date, person_id) -> dict:
    """A married woman aged 22–46: a measure (most), pregnant (a few), or a birth this month."""
    age = rng.randint(22, 46)
    married = start - dt.timedelta(days=rng.randint(400, max(401, (age - 20) * 365)))
    children = min(rng.choices([0, 1, 2, 3], weights=[2, 10, 7, 1])[0], 1 + (start - married).days // 700)
    roll = rng.random()
    last_birth, measure, measure_on, pregnant = None, "无", None, "无"
    if roll < 0.004:  # gave birth this month
        children, last_birth = max(children, 1), _day(rng, start, end)
    else:
        if children:
            last_birth = _day(rng, married + dt.timedelta(days=300), start - dt.timedelta(days=60))
        if roll < 0.03:
            pregnant = "孕中"
        elif roll < 0.93:
            measure = _pick(rng, MEASURES)
            since = max(married, last_birth or married) + dt.timedelta(days=30)
            measure_on = _day(rng, min(since, end), min(since + dt.timedelta(days=700), end))
    return {"姓名": _name(rng, True), "身份证号": person_id(age, True), "小组": group, "结婚日期": married,
            "现有子女数": children, "节育措施": measure, "措施日期": measure_on, "孕情": pregnant,
            "末次生育日期": last_birth, "变动": "无", "是否流动": "否", "备注": None}


def _floater(rng: random.Random, group: str, start: dt.date, end: dt.date, person_id) -> dict:
    kind = rng.choices(["woman_measure", "woman_none", "woman_single", "man", "child", "older"],
                       weights=[22, 5, 6, 50, 10, 7])[0]
    female, measure = kind != "man" and (kind != "child" or rng.random() < 0.5), None
    if kind == "woman_measure":
        age, marital, measure = rng.randint(22, 45), "已婚", _pick(rng, MEASURES)
    elif kind == "woman_none":
        age, marital, measure = rng.randint(21, 44), "已婚", "无"
    elif kind == "woman_single":
        age, marital = rng.randint(17, 30), "未婚"
    elif kind == "child":
        age, marital = rng.randint(1, 12), "未婚"
    elif kind == "older":
        age, marital = rng.randint(52, 64), rng.choice(["已婚", "丧偶"])
    else:
        age = rng.randint(18, 60)
        marital = "未婚" if age < 24 else rng.choices(["已婚", "未婚", "离婚"], weights=[14, 3, 1])[0]
    job = "学生" if age < 16 else _pick(rng, JOBS)
    certified = age >= 18 and rng.random() < 0.35
    return {"姓名": _name(rng, female), "性别": "女" if female else "男", "身份证号": person_id(age, female),
            "户籍地": rng.choice(ORIGINS), "现居住地": f"{STREET['district']}{STREET['name']}{UNIT_TOKEN}{group}"
            f"{rng.randint(1, 160)}号", "小组": group,
            "流入日期": _day(rng, end - dt.timedelta(days=6 * 365), end), "流出日期": None,
            "就业情况": job, "婚姻状况": marital, "节育措施": measure, "婚育证明": "有" if certified else "无",
            "验证": "是" if certified and rng.random() < 0.9 else "否",
            "联系电话": _phone(rng) if age >= 16 else None, "_age": age}


def _group_row(rng: random.Random, group: str, women: list[dict], people: list[dict], start: dt.date,
               end: dt.date) -> dict:
    """The 月报 row that agrees with the group's registers and balances."""
    mothers = [w for w in women if w["末次生育日期"] and start <= w["末次生育日期"] <= end]
    orders = [min(w["现有子女数"], 3) for w in mothers]
    births, deaths, moved_in, moved_out = len(mothers), rng.randint(0, 2), rng.randint(0, 4), rng.randint(0, 3)
    closing = max(30, min(300, round(len(women) / rng.uniform(0.3, 0.4))), len(women) + 10)
    fertile = [p for p in people if p["性别"] == "女" and 15 <= p["_age"] <= 49]
    return {
        "小组": group, "期初人口": closing - births + deaths - moved_in + moved_out, "出生": births,
        "一孩": orders.count(1), "二孩": orders.count(2), "多孩": orders.count(3), "死亡": deaths,
        "迁入": moved_in, "迁出": moved_out, "期末人口": closing, "政策内出生": births,
        "怀孕": sum(w["孕情"] == "孕中" for w in women), "已婚育龄妇女": len(women),
        "节育措施": sum(w["节育措施"] != "无" for w in women), "独生子女证": rng.randint(0, len(women) // 5),
        "流动人口": len(people), "流动育龄妇女": len(fertile),
        "流动节育措施": sum(p["婚姻状况"] == "已婚" and p["节育措施"] not in (None, "无") for p in fertile),
        "持证人数": sum(p["婚育证明"] == "有" for p in people), "验证人数": sum(p["验证"] == "是" for p in people),
    }




def make_template(seed: int, kind: str, roster_rows: int, floating_rows: int, period: str) -> Template:
    """Write one template return and split it into fixed compressed parts and shared-string slots."""
    rng = random.Random(seed)
    data, persons, first_roster = template_data(rng, kind, roster_rows, floating_rows, period)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_return(Path(tmp) / "template.xlsx", data)
        with zipfile.ZipFile(path) as z:
            parts = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    template = Template(kind, tuple(data.monthly["小组"]), persons, [], first_roster_id=first_roster)
    for name, raw in parts:
        if name == SHARED_STRINGS:
            template.members.append((name, 0, b"", 0))  # rebuilt for each unit
            _split_shared_strings(raw.decode("utf-8"), template)
        else:
            template.members.append((name, zlib.crc32(raw), _deflate(raw), len(raw)))
    return template


SHARED_STRINGS = "xl/sharedStrings.xml"
_SI = re.compile(r"(<si>.*?</si>)", re.S)
_T = re.compile(r"<t[^>]*>(.*?)</t>", re.S)


def _split_shared_strings(xml: str, template: Template) -> None:
    for piece in _SI.split(xml):
        text = m.group(1) if piece.startswith("<si>") and (m := _T.search(piece)) else None
        if text is not None and (token := ID_TOKEN.match(text)):
            template.id_slots.append((len(template.sst_parts), int(token.group(1))))
        elif text is not None and any(t in text for t in (UNIT_TOKEN, CODE_TOKEN, PHONE_TOKEN)):
            template.unit_slots.append((len(template.sst_parts), piece))
        template.sst_parts.append(piece)


def _deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush()


# ---- one unit's file --------------------------------------------------------------------

@dataclass(frozen=True)
class UnitPlan:
    index: int
    code: str
    name: str
    template: int
    first_person: int  # street-wide number of the unit's first person (for unique IDs)
    faulty: bool


def unit_workbook(t: Template, plan: UnitPlan, period: str) -> bytes:
    """The template's bytes with this unit's name, code and ID numbers."""
    _, end = period_bounds(period)
    ids = make_ids(np.array([p.age for p in t.persons]), np.array([p.female for p in t.persons]),
                   plan.first_person, end)
    phone = f"139{plan.index:08d}"
    if plan.faulty:  # two clerk mistakes: a wrong check digit, a digit missing from a phone
        ids[t.first_roster_id] = wrong_check_digit(ids[t.first_roster_id])
        phone = phone[:-1]
    parts = list(t.sst_parts)
    for position, person in t.id_slots:
        parts[position] = f"<si><t>{ids[person]}</t></si>"
    for position, xml in t.unit_slots:
        parts[position] = (xml.replace(UNIT_TOKEN, escape(plan.name)).replace(CODE_TOKEN, plan.code)
                           .replace(PHONE_TOKEN, phone))
    sst = "".join(parts).encode("utf-8")
    members = [(n, c, d, s) if n != SHARED_STRINGS else (n, zlib.crc32(sst), _deflate(sst), len(sst))
               for n, c, d, s in t.members]
    return zip_bytes(members)


_LOCAL = struct.Struct("<4sHHHHHIIIHH")
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")
_END = struct.Struct("<4sHHHHIIH")
_DOS_DATE = (2026 - 1980) << 9 | 1 << 5 | 1


def zip_bytes(members: list[tuple[str, int, bytes, int]]) -> bytes:
    """A zip of already-deflated members (name, crc32, deflated data, size)."""
    out, central = io.BytesIO(), []
    for name, crc, data, size in members:
        raw_name = name.encode()
        central.append(_CENTRAL.pack(b"PK\x01\x02", 20, 20, 0, 8, 0, _DOS_DATE, crc, len(data), size,
                                     len(raw_name), 0, 0, 0, 0, 0, out.tell()) + raw_name)
        out.write(_LOCAL.pack(b"PK\x03\x04", 20, 0, 8, 0, _DOS_DATE, crc, len(data), size, len(raw_name), 0))
        out.write(raw_name)
        out.write(data)
    start = out.tell()
    directory = b"".join(central)
    out.write(directory)
    out.write(_END.pack(b"PK\x05\x06", 0, 0, len(central), len(central), len(directory), start, 0))
    return out.getvalue()


# ---- the street -------------------------------------------------------------------------

def unit_name(index: int, kind: str) -> str:
    """A made-up name, three characters and 村 or 社区; equal lengths, so none is inside another."""
    n = len(NAME_CHARS)
    if index >= n ** 3:
        raise ValueError(f"at most {n ** 3} units")
    return "".join(NAME_CHARS[index // n ** k % n] for k in (2, 1, 0)) + ("社区" if kind == "社区" else "村")


def build_templates(roster_rows: int | None, seed: int, period: str, count: int = TEMPLATES) -> list[Template]:
    rng = random.Random(seed)
    templates = []
    for k in range(count):
        roster = roster_rows or rng.randint(300, 700)
        templates.append(make_template(seed * 1000 + k, "社区" if k % 4 == 3 else "村", roster,
                                       rng.randint(50, 200), period))
    return templates


def plan_units(n: int, templates: list[Template], faulty: float, seed: int) -> list[UnitPlan]:
    rng = random.Random(seed + 1)
    plans, first = [], 0
    for i in range(n):
        k = rng.randrange(len(templates))
        plans.append(UnitPlan(i, f"640104{i + 1:06d}", unit_name(i, templates[k].kind), k, first,
                              rng.random() < faulty))
        first += len(templates[k].persons)
    return plans


def registry_toml(plans: list[UnitPlan], templates: list[Template]) -> str:
    lines = ["# Generated by benchmarks/generate.py", "[street]",
             *(f'{k} = {v!r}'.replace("'", '"') for k, v in STREET.items()),
             "", "[settings]", "settle_seconds = 0.0", ""]
    for p in plans:
        t = templates[p.template]
        groups = ", ".join(f'"{g}"' for g in t.groups)
        lines += ["[[units]]", f'code = "{p.code}"', f'name = "{p.name}"', f'kind = "{t.kind}"',
                  f"groups = [{groups}]", ""]
    return "\n".join(lines)


def file_name(plan: UnitPlan, period: str) -> str:
    return f"{plan.code}_{plan.name}_{period}.xlsx"


_TEMPLATES: list[Template] = []


def _init(templates: list[Template]) -> None:
    _TEMPLATES[:] = templates


def _write_units(plans: list[UnitPlan], inbox: str, period: str) -> int:
    for plan in plans:
        (Path(inbox) / file_name(plan, period)).write_bytes(unit_workbook(_TEMPLATES[plan.template], plan, period))
    return len(plans)


def described(folder: Path) -> dict:
    """What a generated folder holds (its DONE marker)."""
    return json.loads((Path(folder) / "DONE").read_text(encoding="utf-8"))


def folder_name(n: int, roster_rows: int | None, faulty: float, seed: int, period: str) -> str:
    return f"n{n}-roster{roster_rows or 'std'}-faulty{faulty:g}-seed{seed}-{period}"


def generate(n: int, out: Path, *, roster_rows: int | None = None, faulty: float = 0.0, seed: int = 7,
             period: str = PERIOD, workers: int = 2, log=None) -> Path:
    """The folder holding `inbox/` (N returns) and `pipeline.toml`; made once, then reused."""
    folder = Path(out) / folder_name(n, roster_rows, faulty, seed, period)
    done = folder / "DONE"
    if done.is_file():
        return folder
    started = time.perf_counter()
    templates = build_templates(roster_rows, seed, period)
    plans = plan_units(n, templates, faulty, seed)
    inbox = folder / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    (folder / "pipeline.toml").write_text(registry_toml(plans, templates), encoding="utf-8")
    chunks = [plans[i:i + 200] for i in range(0, len(plans), 200)]
    if workers > 1 and len(chunks) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers, initializer=_init, initargs=(templates,)) as pool:
            list(pool.map(_write_units, chunks, [str(inbox)] * len(chunks), [period] * len(chunks)))
    else:
        _init(templates)
        for chunk in chunks:
            _write_units(chunk, str(inbox), period)
    done.write_text(json.dumps({"returns": n, "faulty": sum(p.faulty for p in plans), "period": period,
                                "roster_rows": roster_rows, "seed": seed,
                                "seconds": round(time.perf_counter() - started, 1)}), encoding="utf-8")
    if log:
        log(f"generated {n} returns in {folder} ({time.perf_counter() - started:.1f} s)")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, help="number of units (one return each)")
    parser.add_argument("--out", type=Path, default=Path("bench-data"), help="cache folder (default bench-data)")
    parser.add_argument("--roster-rows", type=int, default=None, help="rows of every roster (default 300–700)")
    parser.add_argument("--faulty", type=float, default=0.0, help="share of returns with two clerk mistakes")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--period", default=PERIOD)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    folder = generate(args.n, args.out, roster_rows=args.roster_rows, faulty=args.faulty, seed=args.seed,
                      period=args.period, workers=args.workers, log=lambda m: print(m, file=sys.stderr))
    print(folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
