"""The notebooks are lessons that run: each executes cleanly and each plot cell draws.

Every notebook in notebooks/ runs top to bottom in a fresh `python3` kernel (ipykernel in
this venv) with notebooks/ as its working directory, as `jupyter lab notebooks/` would.
Cells tagged `plot` must leave a PNG. The notebooks are stored without outputs, so a diff
shows only what a person changed.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT = 60  # seconds per cell; each notebook takes well under 30 s in all


def plot_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if "plot" in c.get("metadata", {}).get("tags", [])]


def test_there_are_five_lessons_and_the_readme_names_each() -> None:
    assert len(FILES) >= 5
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    for path in FILES:
        assert path.name in readme, f"notebooks/README.md says what {path.name} teaches"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert plot_cells(nb), f"{path.name} draws at least one plot"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_notebook_runs_and_draws(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's inline backend draws PNGs
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    for cell in nb.cells:
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{path.name}: {cell.source[:60]!r} raised {errors[0].ename}"
    for cell in plot_cells(nb):
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert images, f"{path.name}: the plot cell {cell.source[:60]!r} drew nothing"
