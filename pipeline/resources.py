"""Where the declarative files of schemas/ are, in a checkout or an installed package."""

from __future__ import annotations

import codecs
import hashlib
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

SUMMARY_LAYOUT = "summary_layout.toml"  # the summary's sheets, columns and words (read by status too)


def schemas_dir() -> Path:
    """The schemas/ folder: beside the package in a checkout, inside it once installed."""
    here = Path(__file__).resolve().parent
    checkout = here.parent / "schemas"
    return checkout if (checkout / "template_v1.toml").is_file() else here / "schemas"


@cache
def load_schema_file(name: str) -> dict[str, Any]:
    """Parse one TOML file of schemas/ (cached: they do not change during a run)."""
    return tomllib.loads(toml_text(schemas_dir() / name))


def toml_text(path: Path) -> str:
    """A TOML file's text as Notepad may have saved it: UTF-8, with or without a byte order mark, "Unicode"
    (UTF-16 with its mark), or the Chinese "ANSI" (GBK, read as GB18030, its superset).
    UnicodeDecodeError if it is none of these."""
    data = path.read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030")


def files_digest(roots: list[Path], suffixes: tuple[str, ...] = (".py", ".toml")) -> str:
    """One hash of every file of these kinds under the roots: their paths (relative) and contents."""
    digest = hashlib.sha256()
    for n, root in enumerate(roots):
        for path in sorted(p for p in root.rglob("*") if p.suffix in suffixes and p.is_file()):
            name = f"{n}/{path.relative_to(root).as_posix()}"
            data = path.read_bytes()
            digest.update(f"{len(name)}:{name}:{len(data)}:".encode())
            digest.update(data)
    return digest.hexdigest()


@cache
def build_digest() -> str:
    """What this installation is: the package's code and the forms of schemas/.

    Stamps of written outputs include it, so an upgrade (or a district's edit of a form)
    rewrites the outbox even when the version number stayed the same.
    """
    return files_digest([Path(__file__).resolve().parent, schemas_dir()])
