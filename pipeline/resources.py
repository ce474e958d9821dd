"""Where the declarative files of schemas/ are, in a checkout or an installed package."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any


def schemas_dir() -> Path:
    """The schemas/ folder: beside the package in a checkout, inside it once installed."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "schemas"
    return checkout if (checkout / "template_v1.toml").is_file() else here / "schemas"


@cache
def load_schema_file(name: str) -> dict[str, Any]:
    """Parse one TOML file of schemas/ (cached: they do not change during a run)."""
    with open(schemas_dir() / name, "rb") as fh:
        return tomllib.load(fh)
