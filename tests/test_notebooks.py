"""Every notebook runs end to end in quick mode (PCSIM_QUICK=1), and every committed notebook
carries the outputs of its full-size run: plots, and no errors."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            yield from cell.get("outputs", [])


def test_notebooks_are_numbered_from_01_without_gaps():
    numbers = [p.stem[:2] for p in NOTEBOOKS]
    assert numbers == [f"{i:02d}" for i in range(1, len(NOTEBOOKS) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_plots_and_no_errors(path):
    nb = nbformat.read(path, as_version=4)
    outs = list(_outputs(nb))
    assert not [o for o in outs if o.get("output_type") == "error"], "committed with an error"
    assert any("image/png" in o.get("data", {}) for o in outs), "no plot in the committed outputs"
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), "not fully run"
    text = "".join(o.get("text", "") for o in outs if o.get("output_type") == "stream")
    assert "(full mode)" in text, "the committed outputs are not from a full-size run"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path, monkeypatch):
    monkeypatch.setenv("PCSIM_QUICK", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute(env={**os.environ, "PCSIM_QUICK": "1"})  # raises CellExecutionError
    outs = list(_outputs(nb))
    assert any("image/png" in o.get("data", {}) for o in outs)
    text = "".join(o.get("text", "") for o in outs if o.get("output_type") == "stream")
    assert "(quick mode)" in text
