"""Row rules of the monthly table: the population balance, the sub-totals, the 合计 row, rates."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.findings import Finding, finding
from pipeline.forms import SheetSpec
from pipeline.intake.locate import LocatedRows
from pipeline.validate.batch import RET, ROW, ReturnKey, row_spans
from pipeline.validate.cells import where
from pipeline.values import parse_number

# (part, whole): the part can never exceed the whole.
PART_OF = {
    "measures-exceed-women": ("节育措施", "已婚育龄妇女"),
    "policy-births-exceed-births": ("政策内出生", "出生"),
    "verified-exceed-certified": ("验证人数", "持证人数"),
    "floating-measures-exceed-women": ("流动节育措施", "流动育龄妇女"),
}
BIRTH_ORDERS = ("一孩", "二孩", "多孩")
# Reported rate column → (numerator, denominator, scale); the denominator "平均人口" is (期初+期末)/2.
RATES = {
    "出生率": ("出生", "平均人口", 1000),
    "自然增长率": ("自然增长", "平均人口", 1000),
    "综合节育率": ("节育措施", "已婚育龄妇女", 100),
    "计划生育率": ("政策内出生", "出生", 100),
}


def fmt(number: float) -> str:
    """A count as a clerk writes it: 3,414."""
    return f"{number:,.0f}" if float(number).is_integer() else f"{number:,}"


class RowChecker:
    """The monthly table's row rules over the stacked, typed frame of a batch of returns."""

    def __init__(self, typed: pd.DataFrame, spec: SheetSpec, keys: dict[int, ReturnKey],
                 letters: dict[int, dict[str, str]]):
        self.t, self.spec, self.keys, self.letters = typed, spec, keys, letters

    def at(self, ret: int, column: str, row: int | None) -> dict:
        return where(self.keys[ret], self.spec.name, self.letters[ret].get(column, ""), row)

    def balance(self) -> list[Finding]:
        t = self.t
        补报 = t["往年出生补报"].fillna(0)
        computed = t["期初人口"] + t["出生"] + 补报 - t["死亡"] + t["迁入"] - t["迁出"]
        bad = t["期末人口"].notna() & computed.notna() & (t["期末人口"] != computed)
        found = []
        for i in t.index[bad]:
            r = t.loc[i]
            extra = f" + 补报 {fmt(r['往年出生补报'])}" if r["往年出生补报"] > 0 else ""
            expected = (f"期初 {fmt(r['期初人口'])} + 出生 {fmt(r['出生'])}{extra} − 死亡 {fmt(r['死亡'])}"
                        f" + 迁入 {fmt(r['迁入'])} − 迁出 {fmt(r['迁出'])} = {fmt(computed[i])}")
            found.append(finding("population-balance", **self.at(r[RET], "期末人口", r[ROW]), field="期末人口",
                                 value=fmt(r["期末人口"]), expected=expected))
        return found

    def parts(self) -> list[Finding]:
        found = []
        for code, (part, whole) in PART_OF.items():
            bad = self.t[part] > self.t[whole]  # NaN compares False: already reported as a cell finding
            for _, r in self.t[bad].iterrows():
                found.append(finding(code, **self.at(r[RET], part, r[ROW]), field=part,
                                     value=fmt(r[part]), expected=fmt(r[whole])))
        return found

    def birth_orders(self) -> list[Finding]:
        t = self.t
        present = np.array([[c in self.letters[r] for c in BIRTH_ORDERS] for r in t[RET].tolist()],
                           dtype=bool).reshape(len(t), len(BIRTH_ORDERS))
        orders = t[list(BIRTH_ORDERS)].to_numpy(dtype=float)
        # -0.0 for an absent column adds nothing, not even a sign: the sum of the present ones, in order
        sums = np.where(present, np.where(np.isnan(orders), 0.0, orders), -0.0).sum(axis=1)
        births = t["出生"].to_numpy(dtype=float)
        bad = present.any(axis=1) & ~np.isnan(births) & (sums != births)
        found = []
        for i in np.flatnonzero(bad):
            ret = int(t[RET].iat[i])
            named = [c for c in BIRTH_ORDERS if c in self.letters[ret]]
            found.append(finding("birth-order-sum", **self.at(ret, named[0], t[ROW].iat[i]), field="+".join(named),
                                 value=fmt(sums[i]), expected=fmt(births[i])))
        return found

    def totals(self, tables: dict[int, LocatedRows]) -> list[Finding]:
        """The 合计 row equals the sum of the group rows, column by column."""
        found = []
        counts = [c.name for c in self.spec.columns if c.type == "count"]
        slices = row_spans(self.t[RET])
        values = {name: self.t[name].to_numpy(dtype=float) for name in counts}
        for ret, table in tables.items():
            if table.total is None:
                continue
            rows = slices.get(ret, slice(0, 0))
            for name in counts:
                column = values[name][rows]
                if name not in self.letters[ret] or np.isnan(column).any():
                    continue
                reported = parse_number(table.total.get(name))
                expected = column.sum()  # as Series.sum: numpy's own summation over the group rows
                if reported is not None and reported != expected:
                    found.append(finding("total-row-mismatch", **self.at(ret, name, table.total_row), field=name,
                                         value=fmt(reported), expected=fmt(expected)))
        return found

    def rates(self) -> list[Finding]:
        """Reported rate columns are never trusted: recompute and compare beyond rounding."""
        t = self.t
        inputs = {"平均人口": (t["期初人口"] + t["期末人口"]) / 2, "自然增长": t["出生"] - t["死亡"],
                  **{c: t[c] for c in ("出生", "节育措施", "已婚育龄妇女", "政策内出生")}}
        found = []
        for name, (num, den, scale) in RATES.items():
            computed = inputs[num] / inputs[den].where(inputs[den] > 0) * scale
            shown = t[name].to_numpy(dtype=float)
            rows = np.flatnonzero(~np.isnan(shown) & computed.notna().to_numpy())
            values = computed.to_numpy(dtype=float)
            for i in rows:
                reported, value = shown[i], values[i]
                if scale == 100 and reported <= 1 < value:
                    reported *= 100  # 0.923 in a cell formatted as a percentage
                if abs(reported - value) > _rounding(shown[i]) + 1e-9:
                    found.append(finding("rate-mismatch", **self.at(int(t[RET].iat[i]), name, t[ROW].iat[i]),
                                         field=name, value=f"{shown[i]:g}", expected=f"{value:.1f}"))
        return found


def _rounding(reported: float) -> float:
    """Half a unit of the last decimal the clerk wrote (at least 0.05)."""
    text = f"{reported:.6f}".rstrip("0")
    decimals = len(text.split(".")[1]) if "." in text else 0
    return max(0.5 * 10 ** -min(decimals, 6), 0.05) if not math.isnan(reported) else 0.0
