"""Synthetic, seeded monthly returns for the demo street (丽景街道, seed plan 3).

Every figure of a group row in 月报 agrees with that unit's 育龄妇女 roster and
流动人口 register, and the street totals are the ones of seed plan 3. ID numbers are
built here (not with Faker's ssn, which dates birthdays from today and silently swaps an
area code it does not know) so the same seed gives the same data on any day.
"""

from __future__ import annotations

import calendar
import copy
import functools
import datetime as dt
import random
from dataclasses import dataclass

import pandas as pd
from faker import Faker
from stdnum.cn import ric

from pipeline.registry import Registry, Unit
from pipeline.returnbook import ReturnData

# Street totals of seed plan 3 (sum of the group rows of all units).
STREET_TOTALS = {
    "期末人口": 21_333, "已婚育龄妇女": 5_227, "节育措施": 4_827, "流动人口": 4_873,
    "流动育龄妇女": 1_213, "流动节育措施": 1_037, "持证人数": 1_557, "验证人数": 1_557, "独生子女证": 378,
}
MONTHLY_COLUMNS = [
    "小组", "期初人口", "出生", "一孩", "二孩", "多孩", "死亡", "迁入", "迁出", "期末人口", "政策内出生",
    "怀孕", "已婚育龄妇女", "节育措施", "独生子女证", "流动人口", "流动育龄妇女", "流动节育措施", "持证人数", "验证人数",
]
ROSTER_COLUMNS = ["序号", "姓名", "身份证号", "小组", "结婚日期", "现有子女数", "节育措施", "措施日期", "孕情",
                  "末次生育日期", "变动", "是否流动", "备注"]
FLOATING_COLUMNS = ["序号", "姓名", "性别", "身份证号", "户籍地", "现居住地", "小组", "流入日期", "流出日期",
                    "就业情况", "婚姻状况", "节育措施", "婚育证明", "验证", "联系电话"]

# Area codes as candidates in order: the first one valid in the person's birth year is used
# (stdnum checks that the county code existed then; 兴庆区 640104 only exists since 2002).
LOCAL_AREAS = [(["640104", "640102", "640120"], 6), (["640106", "640111", "640120"], 2),
               (["640121"], 1), (["640122"], 1), (["640181", "640382", "642103", "642125"], 1)]
ORIGINS = [  # 户籍地 of floating people, with the area codes of their IDs
    ("宁夏回族自治区固原市西吉县", ["640422", "642223"], 5),
    ("宁夏回族自治区吴忠市同心县", ["640324", "642127"], 4),
    ("宁夏回族自治区石嘴山市平罗县", ["640221"], 2),
    ("甘肃省临夏回族自治州临夏县", ["622921"], 3),
    ("甘肃省兰州市永登县", ["620121"], 2),
    ("陕西省宝鸡市岐山县", ["610323"], 2),
    ("内蒙古自治区呼和浩特市土默特左旗", ["150121"], 1),
    ("青海省海北藏族自治州门源回族自治县", ["632221"], 1),
    ("山西省太原市清徐县", ["140121"], 1),
    ("四川省成都市金堂县", ["510121"], 1),
]
MEASURES_BY_CHILDREN = {  # measure -> weight, by number of children
    0: {"药具": 7, "皮埋": 2, "其他": 1},
    1: {"上环": 12, "药具": 4, "皮埋": 2, "女扎": 1, "男扎": 1},
    2: {"上环": 9, "女扎": 7, "男扎": 2, "皮埋": 1, "药具": 1},
}
JOBS = {"务工": 11, "经商": 5, "务农": 1, "无业": 2, "其他": 1}


@dataclass(frozen=True)
class _Period:
    text: str
    start: dt.date
    end: dt.date


def demo_month(registry: Registry, period: str, seed: int = 2026) -> dict[str, ReturnData]:
    """A clean, internally consistent month of returns for every unit, keyed by unit code."""
    per = _parse_period(period)
    rng = random.Random(seed)
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    groups = [(unit, g) for unit in registry.units for g in unit.groups]
    rows = _group_rows(groups, rng)
    used_ids: set[str] = set()
    out: dict[str, ReturnData] = {}
    for unit in registry.units:
        mine = [r for (u, _), r in zip(groups, rows) if u.code == unit.code]
        roster = [w for r in mine for w in _roster_rows(r, per, rng, fake, used_ids)]
        floating = [p for r in mine for p in _floating_rows(registry, unit, r, per, rng, fake, used_ids)]
        out[unit.code] = ReturnData(
            cover=_cover(unit, per, fake),
            monthly=pd.DataFrame([{c: r[c] for c in MONTHLY_COLUMNS} for r in mine], columns=MONTHLY_COLUMNS),
            roster=_numbered(roster, ROSTER_COLUMNS),
            floating=_numbered(floating, FLOATING_COLUMNS),
        )
    return out


def with_clerk_mistakes(data: ReturnData) -> ReturnData:
    """A copy of a clean return with five realistic clerk mistakes, each in exactly one cell.

    1. 月报 期末人口 of the first group whose last two digits differ (not the last group):
       those digits transposed (e.g. 645 -> 654), so 期初+出生-死亡+迁入-迁出 no longer balances.
    2. 月报 小组 of the last group typed as "<number of groups + 1>组" (e.g. "8组" in 满春村),
       a group that is not registered; its roster and register rows then match no table row.
    3. 育龄妇女 身份证号 of the first woman: last (check) digit wrong (GB 11643 check fails).
    4. 育龄妇女 节育措施 of the first other woman with 上环: written "上环术", not in the list.
    5. 流动人口 联系电话 of the first person with a phone: last digit dropped (10 digits).
    """
    bad = copy.deepcopy(data)
    monthly = bad.monthly
    candidates = [i for i in range(len(monthly) - 1) if _transposed(int(monthly.at[i, "期末人口"])) is not None]
    i = candidates[0]
    monthly.at[i, "期末人口"] = _transposed(int(monthly.at[i, "期末人口"]))
    monthly.at[len(monthly) - 1, "小组"] = f"{len(monthly) + 1}组"

    roster = bad.roster
    roster.at[0, "身份证号"] = _wrong_check_digit(str(roster.at[0, "身份证号"]))
    j = next(k for k in range(1, len(roster)) if roster.at[k, "节育措施"] == "上环")
    roster.at[j, "节育措施"] = "上环术"

    floating = bad.floating
    k = next(k for k in range(len(floating)) if isinstance(floating.at[k, "联系电话"], str))
    floating.at[k, "联系电话"] = floating.at[k, "联系电话"][:-1]
    return bad


# ---------------------------------------------------------------- the month's figures


def _group_rows(groups: list[tuple[Unit, str]], rng: random.Random) -> list[dict]:
    """The 月报 row of every group of the street, splitting the street totals."""
    n = len(groups)
    pop = _split(STREET_TOTALS["期末人口"], [rng.uniform(300, 1000) for _ in range(n)], rng)

    def jitter(lo: float = 0.85, hi: float = 1.15) -> list[float]:
        return [rng.uniform(lo, hi) for _ in range(n)]

    married = _split(STREET_TOTALS["已婚育龄妇女"], _mul(pop, jitter()), rng, [p * 2 // 5 for p in pop])
    measures = _split(STREET_TOTALS["节育措施"], _mul(married, jitter(0.95, 1.05)), rng, married)
    births = _split(rng.randint(13, 17), pop, rng)
    free = [m - s for m, s in zip(married, measures)]
    pregnant = _split(rng.randint(95, 125), free, rng, [max(0, f - b) for f, b in zip(free, births)])
    floating_w = [p * (1.5 if u.kind == "社区" else 0.9) for p, (u, _) in zip(pop, groups)]
    floating = _split(STREET_TOTALS["流动人口"], _mul(floating_w, jitter(0.7, 1.3)), rng)
    f_women = _split(STREET_TOTALS["流动育龄妇女"], _mul(floating, jitter()), rng, [f * 2 // 5 for f in floating])
    f_measures = _split(STREET_TOTALS["流动节育措施"], _mul(f_women, jitter(0.95, 1.05)), rng, f_women)
    certs = _split(STREET_TOTALS["持证人数"], _mul(floating, jitter()), rng, [f // 2 for f in floating])
    one_child = _split(STREET_TOTALS["独生子女证"], _mul(pop, jitter(0.7, 1.3)), rng)
    deaths = _split(rng.randint(4, 8), pop, rng)
    moved_in = _split(rng.randint(25, 45), pop, rng)
    moved_out = _split(rng.randint(20, 40), pop, rng)
    out_of_policy = rng.choice([i for i in range(n) if births[i]])

    rows = []
    for i, (unit, group) in enumerate(groups):
        orders = [rng.choices([1, 2, 3], weights=[9, 8, 3])[0] for _ in range(births[i])]
        rows.append({
            "unit": unit.code, "小组": group, "birth_orders": orders,
            "期初人口": pop[i] - births[i] + deaths[i] - moved_in[i] + moved_out[i],
            "出生": births[i], "一孩": orders.count(1), "二孩": orders.count(2), "多孩": orders.count(3),
            "死亡": deaths[i], "迁入": moved_in[i], "迁出": moved_out[i], "期末人口": pop[i],
            "政策内出生": births[i] - (i == out_of_policy), "怀孕": pregnant[i],
            "已婚育龄妇女": married[i], "节育措施": measures[i], "独生子女证": one_child[i],
            "流动人口": floating[i], "流动育龄妇女": f_women[i], "流动节育措施": f_measures[i],
            "持证人数": certs[i], "验证人数": certs[i],
        })
    return rows


def _split(total: int, weights: list[float], rng: random.Random, caps: list[int] | None = None) -> list[int]:
    """total split in whole numbers roughly in proportion to weights, none above its cap."""
    caps = caps if caps is not None else [total] * len(weights)
    if sum(caps) < total:
        raise ValueError(f"cannot split {total} under caps summing to {sum(caps)}")
    s = sum(weights) or 1.0
    out = [min(int(total * w / s), c) for w, c in zip(weights, caps)]
    for _ in range(total - sum(out)):
        open_ = [i for i in range(len(out)) if out[i] < caps[i]]
        out[rng.choices(open_, weights=[weights[i] + 1e-9 for i in open_])[0]] += 1
    return out


def _mul(a: list[float], b: list[float]) -> list[float]:
    return [x * y for x, y in zip(a, b)]


def _weighted(rng: random.Random, table: dict[str, float]) -> str:
    """One key of table, drawn with the values as weights."""
    return rng.choices(list(table), weights=list(table.values()))[0]


# ---------------------------------------------------------------- people


def _roster_rows(row: dict, per: _Period, rng: random.Random, fake: Faker, used: set[str]) -> list[dict]:
    """The 育龄妇女 roster of one group, agreeing with its 月报 row."""
    married, measures, pregnant = row["已婚育龄妇女"], row["节育措施"], row["怀孕"]
    status = ["measure"] * measures + ["pregnant"] * pregnant + ["none"] * (married - measures - pregnant)
    rng.shuffle(status)
    orders = list(row["birth_orders"])
    births_at = [i for kind in ("none", "measure") for i, s in enumerate(status) if s == kind]
    birth_order = dict(zip(births_at[: len(orders)], orders))
    return [_woman(row["小组"], s, birth_order.get(i), per, rng, fake, used) for i, s in enumerate(status)]


def _woman(group: str, status: str, birth_order: int | None, per: _Period, rng: random.Random,
           fake: Faker, used: set[str]) -> dict:
    """One married woman aged 15–49; birth_order set if she gave birth this month."""
    new = birth_order is None and status != "pregnant" and rng.random() < 0.0015
    if birth_order is not None:
        age = rng.randint(22, 38)
    elif status == "pregnant":
        age = rng.randint(21, 40)
    else:
        age = rng.choices(range(21, 50), weights=[min(a - 19, 8) for a in range(21, 50)])[0]
    birth = _birth_date(age, per.end, rng)
    if new:
        married_on = _day_between(per.start, per.end, rng)
    else:
        m_age = min(rng.choices(range(20, 31), weights=[6, 9, 10, 10, 9, 7, 5, 4, 3, 2, 2])[0],
                    age - (2 if birth_order else 1))
        latest = per.start - dt.timedelta(days=300 if birth_order else 1)
        married_on = _day_between(_years_after(birth, m_age),
                                  min(_years_after(birth, m_age + 1), latest), rng)
    last_birth, children = None, 0
    if birth_order is not None:
        children, last_birth = birth_order, _day_between(per.start, per.end, rng)
    else:
        first_possible = married_on + dt.timedelta(days=300)
        if first_possible < per.start and not new:
            years = (per.start - married_on).days / 365
            children = rng.choices([0, 1, 2, 3], weights=[2, 6 + years, 4 + years, 1 + years / 4])[0]
            children = min(children, 1 + int(years / 2))
            if children:
                earliest = max(first_possible, per.start - dt.timedelta(days=int(years * 365)))
                last_birth = _day_between(earliest, per.start - dt.timedelta(days=1), rng)
    measure, measure_on = "无", None
    if status == "measure":
        measure = "药具" if birth_order is not None else _weighted(rng, MEASURES_BY_CHILDREN[min(children, 2)])
        since = max(married_on, last_birth or married_on)
        measure_on = _day_between(min(since + dt.timedelta(days=30), per.end),
                                  min(since + dt.timedelta(days=730), per.end), rng)
    return {
        "姓名": _name(fake, female=True), "身份证号": _new_id(_pick_area(LOCAL_AREAS, rng), birth, True, rng, used),
        "小组": group, "结婚日期": married_on, "现有子女数": children, "节育措施": measure, "措施日期": measure_on,
        "孕情": "孕中" if status == "pregnant" else "无", "末次生育日期": last_birth,
        "变动": "新增" if new else "无", "是否流动": "否", "备注": None,
    }


def _floating_rows(registry: Registry, unit: Unit, row: dict, per: _Period, rng: random.Random, fake: Faker,
                   used: set[str]) -> list[dict]:
    """The 流动人口 register of one group, agreeing with its 月报 row."""
    n, women, measures, certs = row["流动人口"], row["流动育龄妇女"], row["流动节育措施"], row["持证人数"]
    no_measure_married = round((women - measures) * 0.3)
    kinds = (["woman_measure"] * measures + ["woman_married"] * no_measure_married
             + ["woman_single"] * (women - measures - no_measure_married))
    rest = n - women
    for _ in range(rest):
        kinds.append(rng.choices(["man", "child", "older_woman"], weights=[75, 15, 10])[0])
    rng.shuffle(kinds)
    people = [_floating_person(k, per, rng) for k in kinds]
    adults = [i for i, p in enumerate(people) if p["age"] >= 18]
    holders = set(rng.sample(adults if len(adults) >= certs else range(n), certs))
    out = []
    for i, p in enumerate(people):
        origin, areas, _ = rng.choices(ORIGINS, weights=[o[2] for o in ORIGINS])[0]
        female = p["female"]
        out.append({
            "姓名": _name(fake, female), "性别": "女" if female else "男",
            "身份证号": _new_id(areas, p["birth"], female, rng, used), "户籍地": origin,
            "现居住地": _address(registry, unit, row["小组"], rng), "小组": row["小组"],
            "流入日期": _day_between(max(p["birth"], per.end - dt.timedelta(days=8 * 365)), per.end, rng),
            "流出日期": None, "就业情况": p["job"], "婚姻状况": p["marital"], "节育措施": p["measure"],
            "婚育证明": "有" if i in holders else "无", "验证": "是" if i in holders else "否",
            "联系电话": fake.phone_number() if p["age"] >= 16 else None,
        })
    return out


def _floating_person(kind: str, per: _Period, rng: random.Random) -> dict:
    """Age, sex, marriage, work and measure of one floating person of the given kind."""
    measure = None
    if kind == "woman_measure":
        age, female, marital = rng.randint(21, 49), True, "已婚"
        measure = _weighted(rng, MEASURES_BY_CHILDREN[1])
    elif kind == "woman_married":
        age, female, marital, measure = rng.randint(21, 45), True, "已婚", "无"
    elif kind == "woman_single":
        age, female, marital = rng.randint(15, 32), True, "未婚"
    elif kind == "child":
        age, female, marital = rng.randint(0, 14), rng.random() < 0.5, "未婚"
    elif kind == "older_woman":
        age, female = rng.randint(50, 66), True
        marital = rng.choices(["已婚", "丧偶", "离婚"], weights=[8, 2, 1])[0]
    else:
        age, female = rng.randint(16, 62), False
        marital = "未婚" if age < 23 else rng.choices(["已婚", "未婚", "离婚"], weights=[14, 3, 1])[0]
    if age < 6:
        job = "其他"
    elif age < 16 or (age < 19 and rng.random() < 0.6):
        job = "学生"
    else:
        job = _weighted(rng, JOBS)
    return {"age": age, "female": female, "marital": marital, "measure": measure, "job": job,
            "birth": _birth_date(age, per.end, rng)}


def _name(fake: Faker, female: bool) -> str:
    """A name of the right sex (zh_CN name_female()/name_male() ignore the sex: one mixed format)."""
    return fake.last_name() + (fake.first_name_female() if female else fake.first_name_male())


def _address(registry: Registry, unit: Unit, group: str, rng: random.Random) -> str:
    """A home address in the street: house number in a village group, flat in a community."""
    head = f"{registry.street.district}{registry.street.name}{unit.name}"
    if unit.kind == "社区":
        return f"{head}{rng.randint(1, 40)}号楼{rng.randint(1, 4)}单元{rng.randint(1, 18)}0{rng.randint(1, 4)}室"
    return f"{head}{group}{rng.randint(1, 160)}号"


def _cover(unit: Unit, per: _Period, fake: Faker) -> dict[str, object]:
    """The 封面 of one unit's return, filed on the 3rd of the following month."""
    following = per.end + dt.timedelta(days=1)
    return {"单位名称": unit.name, "单位代码": unit.code, "报告期": per.text, "填报人": fake.name(),
            "联系电话": fake.phone_number(), "填报日期": following.replace(day=3)}


def _numbered(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """Rows as a frame with 序号 1..n and the given column order."""
    for k, r in enumerate(rows, start=1):
        r["序号"] = k
    return pd.DataFrame(rows, columns=columns)


# ---------------------------------------------------------------- dates and ID numbers


def _parse_period(period: str) -> _Period:
    year, month = (int(x) for x in period.split("-"))
    return _Period(f"{year:04d}-{month:02d}", dt.date(year, month, 1),
                   dt.date(year, month, calendar.monthrange(year, month)[1]))


def _years_after(day: dt.date, years: int) -> dt.date:
    """The same day `years` later (28 Feb for a 29 Feb birthday in a common year)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _birth_date(age: int, end: dt.date, rng: random.Random) -> dt.date:
    """A birth date making the person exactly `age` whole years old on `end`."""
    latest = _years_after(end, -age)
    earliest = _years_after(end, -age - 1) + dt.timedelta(days=1)
    return _day_between(earliest, latest, rng)


def _day_between(first: dt.date, last: dt.date, rng: random.Random) -> dt.date:
    """A random day from first to last inclusive (first if the range is empty)."""
    return first + dt.timedelta(days=rng.randint(0, max(0, (last - first).days)))


def _pick_area(areas: list[tuple[list[str], int]], rng: random.Random) -> list[str]:
    return rng.choices([a for a, _ in areas], weights=[w for _, w in areas])[0]


def _new_id(areas: list[str], birth: dt.date, female: bool, rng: random.Random, used: set[str]) -> str:
    """A valid 18-digit ID not used yet: first area code valid in the birth year, sex in digit 17."""
    area = next((a for a in areas if _area_valid(a, birth.year)), None)
    if area is None:
        raise ValueError(f"no area code of {areas} is valid for a birth in {birth.year}")
    while True:
        body = f"{area}{birth:%Y%m%d}{rng.randrange(0 if female else 1, 1000, 2):03d}"
        number = body + ric.calc_check_digit(body + "0")  # calc_check_digit drops the last character
        if number not in used:
            used.add(number)
            return number


@functools.cache
def _area_valid(area: str, year: int) -> bool:
    """Whether stdnum accepts the area code for someone born in that year (counties have date ranges)."""
    body = f"{area}{year}0101001"
    return ric.is_valid(body + ric.calc_check_digit(body + "0"))


def _transposed(value: int) -> int | None:
    """value with its last two digits swapped, or None if that changes nothing."""
    text = str(value)
    if len(text) < 2 or text[-1] == text[-2]:
        return None
    return int(text[:-2] + text[-1] + text[-2])


def _wrong_check_digit(number: str) -> str:
    """The same ID with a different (so wrong) last digit."""
    digits = "0123456789X"
    return number[:-1] + digits[(digits.index(number[-1].upper()) + 1) % len(digits)]
