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
In the prose of a Python file (its docstrings and comments; string literals in code are
users' files written by tests) and in the markdown and presets, two more kinds are checked:

- a bare module or notebook name (``synapses.py``, ``NAME.ipynb``): some file of that name
  exists somewhere in the repository;
- a path relative to a folder (``engines/protocol.py``, ``peers/README.md``): it resolves as
  above.

Bare ``NAME.toml`` outside the presets is left alone: examples name users' own files
(``run.toml``); so are paths through hidden folders that a documented command creates
(``benchmarks/peers/.venv``), and this file, whose own examples must not resolve.
"""

from __future__ import annotations

import ast
import fnmatch
import io
import re
import tokenize
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
BARE_MODULE = re.compile(r"(?<![A-Za-z0-9_./<-])[A-Za-z0-9_*-]+\.(?:py|ipynb)\b")
RELATIVE = re.compile(
    rf"(?<![A-Za-z0-9_./-]){_CHARS}*/{_CHARS}*[A-Za-z0-9_>*]\.(?:py|ipynb|md|toml)\b"
)
REPO_FILES = sorted(
    {
        p.name
        for p in ROOT.rglob("*")
        if p.is_file()
        and not any(q.startswith(".") or q == "__pycache__" for q in p.relative_to(ROOT).parts)
    }
)


def prose(path: Path) -> str:
    """What a reader reads in ``path``: a Python file's docstrings and comments, all of any
    other file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        return text
    readline = io.StringIO(text).readline
    parts = [t.string for t in tokenize.generate_tokens(readline) if t.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                parts.append(doc)
    return "\n".join(parts)


def missing_in_prose(path: Path) -> list[str]:
    """The bare module/notebook names and relative paths in ``path``'s prose that name no file
    of the repository (module docstring rules)."""
    text = prose(path)
    out = [
        n
        for n in set(BARE_MODULE.findall(text))
        if not fnmatch.filter(REPO_FILES, re.sub(r"<[^>]*>", "*", n))
    ]
    out += [n for n in set(RELATIVE.findall(text)) if not resolves(n, path.parent)]
    return sorted(out)


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
    # prose only: a docstring's module names count, a test's file literals do not
    stability = prose(ROOT / "pcsim" / "stability.py")
    assert "synapses.py" in BARE_MODULE.findall(stability)
    assert 'tmp_path / "m.py"' in (ROOT / "tests" / "test_cli.py").read_text(encoding="utf-8")
    assert "m.py" not in prose(ROOT / "tests" / "test_cli.py")
    assert "engines/protocol.py" in RELATIVE.findall("see engines/protocol.py.")
    assert not fnmatch.filter(REPO_FILES, "nothing_here.py")
    assert not resolves("spice/compare.py", ROOT / "tests")  # a path is relative to a folder


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_file_exists(path):
    missing = sorted(n for n in named_files(path) if not resolves(n, path.parent))
    assert not missing, f"{path.relative_to(ROOT)} names files not in the repository: {missing}"


@pytest.mark.parametrize("path", SCANNED, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_named_in_prose_exists(path):
    missing = missing_in_prose(path)
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
