"""The machine-readable run report: report.json and findings.csv (UTF-8 with BOM for Excel)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from pipeline.findings import Finding
from pipeline.period import PeriodState
from pipeline.write.privacy import for_street
from pipeline.write.safe import atomic_file, csv_safe

# SPEC §6 fields first, in contract order; extensions after.
FINDING_FIELDS = ["code", "severity", "unit", "file", "sheet", "cell", "row", "column", "value", "expected",
                  "message", "message_en", "field", "unit_name", "period"]
REPORT_FORMAT = 1


def report_dict(state: PeriodState, findings: list[Finding] | None = None) -> dict:
    """Each return's outcome and every standing finding of the period (`findings`: those, as the street sees them)."""
    names = {u.code: u.name for u in state.registry.units}
    findings = for_street(state.findings, state.registry.settings.mask_ids) if findings is None else findings
    return {
        "format": REPORT_FORMAT,
        "street": {"code": state.registry.street.code, "name": state.registry.street.name,
                   "district": state.registry.street.district},
        "period": state.period,
        "generated_at": state.generated_at.isoformat(timespec="seconds"),
        "returns": [
            {"unit": r.unit or "", "unit_name": names.get(r.unit or "", ""), "period": r.period or "",
             "file": r.file_name, "sha256": r.sha256, "status": r.status, "received_at": r.received_at.isoformat(),
             "reason": r.reason}
            for r in state.returns if r.status in ("accepted", "rejected", "superseded", "quarantined")
        ],
        "units": [
            {"unit": s.unit.code, "unit_name": s.unit.name, "status": s.status, "days_late": s.days_late,
             "errors": s.count("error"), "warnings": s.count("warning")}
            for s in state.submissions
        ],
        "findings": [{k: d[k] for k in FINDING_FIELDS} for d in (f.to_dict() for f in findings)],
    }


def write_report_json(state: PeriodState, path: Path, findings: list[Finding] | None = None) -> None:
    with atomic_file(path) as temp:
        temp.write_text(json.dumps(report_dict(state, findings), ensure_ascii=False, indent=1), encoding="utf-8")


def write_findings_csv(findings: list[Finding], path: Path) -> None:
    """One row per finding; every field neutralised so Excel never runs one as a formula."""
    with atomic_file(path) as temp:
        with open(temp, "w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(FINDING_FIELDS)
            for f in findings:
                row = f.to_dict()
                writer.writerow([csv_safe(row[k]) for k in FINDING_FIELDS])
