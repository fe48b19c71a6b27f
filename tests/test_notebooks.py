"""Every notebook in notebooks/ runs top to bottom with its small settings.

Each notebook runs in a fresh kernel, so it pays for its own imports and JAX
compilations, which take most of its time. They run in the background
beside the other tests (``tests/notebook_runner.py``).
"""

import nbformat
import pytest
from notebook_runner import NOTEBOOKS, BackgroundNotebooks


@pytest.fixture(scope="module")
def executed(request):
    """The background run started by conftest.py, or a new one."""
    runs = getattr(request.config, "background_notebooks", None)
    if runs is None:
        runs = BackgroundNotebooks()
        request.config.background_notebooks = runs
    return runs


def _outputs(notebook):
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]


def test_notebooks_found():
    assert len(NOTEBOOKS) >= 4, f"found only {[p.name for p in NOTEBOOKS]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_saved_without_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    with_outputs = [i for i, cell in enumerate(code_cells) if cell.get("outputs")]
    with_counts = [
        i for i, cell in enumerate(code_cells) if cell.get("execution_count")
    ]
    assert not with_outputs, f"code cells {with_outputs} have saved outputs"
    assert not with_counts, f"code cells {with_counts} have execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, executed):
    notebook, stderr = executed.result(path.stem)
    assert notebook is not None, f"{path.name} did not run:\n{stderr}"
    outputs = _outputs(notebook)
    errors = [
        f"{output.ename}: {output.evalue}"
        for output in outputs
        if output.output_type == "error"
    ]
    assert not errors, errors
    # A backend without display (such as Agg) turns plt.show() into a warning
    # and shows nothing.
    if "plt.show()" in "".join(cell.source for cell in notebook.cells):
        figures = [
            output for output in outputs if "image/png" in output.get("data", {})
        ]
        assert figures, "the notebook calls plt.show() but displayed no figure"
