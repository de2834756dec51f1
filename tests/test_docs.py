"""Every file the code and the docs name exists in the repository.

A citation such as ``docs/math.md`` in a docstring, ``benchmarks/bench_step.py`` in a comment or
``(see pcm.toml)`` in a preset must lead a reader who cloned the repository to a file. Two kinds
of names are checked, in every ``.py``, ``.toml`` and ``.md`` file under ``pcsim/``,
``hardware_models/``, ``benchmarks/``, ``tests/`` and ``docs/`` and in the top-level README:

- any ``NAME.md`` (markdown is never a user's file), and ``NAME.toml`` in the presets;
- any path that starts with a top-level folder of the repository (``docs/...``,
  ``benchmarks/*.py``, ``hardware_models/presets/<name>.toml``); ``*`` and ``<placeholder>``
  match any name and must match at least one file.

A name resolves relative to the naming file's folder or any folder above it, up to the root.
Bare ``NAME.py`` / ``NAME.toml`` elsewhere are left alone: examples name users' own files
(``run.toml``, ``model.py``); so are paths through hidden folders that a documented command
creates (``benchmarks/peers/.venv``), and this file, whose own examples must not resolve.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("pcsim", "hardware_models", "benchmarks", "tests", "docs", "notebooks")
SCANNED = [ROOT / "README.md"] + sorted(
    p
    for d in ("pcsim", "hardware_models", "benchmarks", "tests", "docs")
    for p in (ROOT / d).rglob("*")
    if p.suffix in (".py", ".toml", ".md") and p.is_file() and "__pycache__" not in p.parts
    if p != Path(__file__).resolve()
)

_CHARS = r"[A-Za-z0-9_<>*.\-/]"
MARKDOWN = re.compile(rf"(?<![A-Za-z0-9_./-]){_CHARS}*[A-Za-z0-9_>*]\.md\b")
TOP_PATH = re.compile(rf"(?<![A-Za-z0-9_./-])(?:{'|'.join(TOP)})/{_CHARS}*[A-Za-z0-9_>*]")
PRESET_TOML = re.compile(r"(?<![A-Za-z0-9_./-])[A-Za-z0-9_-]+\.toml\b")


def named_files(path: Path) -> set[str]:
    """The file names ``path`` mentions that must exist (module docstring rules)."""
    text = path.read_text(encoding="utf-8")
    names = set(MARKDOWN.findall(text)) | {m.rstrip(".") for m in TOP_PATH.findall(text)}
    if path.parent.name == "presets" and path.suffix == ".toml":
        names |= set(PRESET_TOML.findall(text))
    return {n for n in names if not any(part.startswith(".") for part in n.split("/"))}


def resolves(name: str, where: Path) -> bool:
    """True when ``name`` (``*`` and ``<x>`` as wildcards) names at least one file or folder,
    relative to ``where`` or any folder above it up to the repository root."""
    pattern = re.sub(r"<[^>]*>", "*", name).rstrip("/")
    folder = where
    while True:
        if pattern.startswith("/"):
            return False  # an absolute path points outside the repository
        if (
            any(True for _ in folder.glob(pattern))
            if "*" in pattern
            else (folder / pattern).exists()
        ):
            return True
        if folder == ROOT:
            return False
        folder = folder.parent


def test_the_scan_finds_the_citations():
    """The rules above see the names they are meant for (so the next test is not vacuous)."""
    field = named_files(ROOT / "pcsim" / "field.py")
    assert "docs/math.md" in field
    bench = named_files(ROOT / "benchmarks" / "README.md")
    assert {"RESULTS.md", "peers/README.md", "docs/sources.md"} <= bench
    assert "pcm.toml" in named_files(ROOT / "hardware_models" / "presets" / "sram-cim.toml")
    assert "hardware_models/presets/<name>.toml" in named_files(
        ROOT / "hardware_models" / "chip.py"
    )
    assert not resolves("DESIGN.md", ROOT / "pcsim")
    assert not resolves("/work/shared/REFERENCE_NUMBERS.md", ROOT / "benchmarks")
    assert not resolves("docs/nothing-here.md", ROOT / "tests")
    assert resolves("hardware_models/presets/<name>.toml", ROOT / "pcsim")


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_file_exists(path):
    missing = sorted(n for n in named_files(path) if not resolves(n, path.parent))
    assert not missing, f"{path.relative_to(ROOT)} names files not in the repository: {missing}"


def test_every_preset_constant_is_in_the_sources_page():
    """docs/sources.md accounts for every constant the presets set (by its field name)."""
    sources = (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")
    key = re.compile(r"^([a-z_0-9]+)\s*=", re.MULTILINE)
    skip = {"name", "description"}
    for preset in sorted((ROOT / "hardware_models" / "presets").glob("*.toml")):
        keys = set(key.findall(preset.read_text(encoding="utf-8"))) - skip
        missing = sorted(k for k in keys if k not in sources)
        assert not missing, f"{preset.name}: constants not in docs/sources.md: {missing}"


def test_the_module_map_names_every_module():
    """docs/architecture.md's module map names every module of both packages (a new module
    gets its line there, so the map a newcomer reads stays the code's)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(
        str(p.relative_to(ROOT))
        for d in ("pcsim", "hardware_models")
        for p in (ROOT / d).rglob("*.py")
        if p.name != "__init__.py" and "__pycache__" not in p.parts
    )
    missing = [m for m in modules if m not in text]
    assert not missing, f"docs/architecture.md's module map lacks: {missing}"
