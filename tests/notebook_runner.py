"""Run the notebooks in the background while the rest of the suite runs.

Each notebook executes in a fresh kernel from its own process, one after the
other. Most of a notebook's time is imports and single-threaded JAX
compilation, so running them beside the other tests leaves the suite's wall
time nearly unchanged. ``tests/conftest.py`` starts the run after collection
when notebook tests were collected; the notebook tests wait for its results.
"""

import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nbformat

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))

# Executes one notebook (argv: source, output, working directory) and writes it
# with its outputs. Errors are kept as outputs so that the test can show them.
RUNNER = """
import sys

import nbformat
from nbclient import NotebookClient

source, output, directory = sys.argv[1:]
notebook = nbformat.read(source, as_version=4)
client = NotebookClient(
    notebook,
    timeout=600,
    kernel_name="python3",
    allow_errors=True,
    resources={"metadata": {"path": directory}},
)
client.execute()
nbformat.write(notebook, output)
"""


def run_notebook(path: Path, root: Path):
    """Execute ``path`` in ``root / path.stem``; return (notebook or None, stderr)."""
    directory = root / path.stem
    directory.mkdir()
    output = root / f"{path.stem}.executed.ipynb"
    process = subprocess.run(
        [sys.executable, "-c", RUNNER, str(path), str(output), str(directory)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    notebook = nbformat.read(output, as_version=4) if output.exists() else None
    return notebook, process.stderr[-4000:]


class BackgroundNotebooks:
    """Notebook runs started at once, one at a time, in a worker thread."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="dcl-notebooks-"))
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.futures: dict[str, Future] = {
            path.stem: self.pool.submit(run_notebook, path, self.root)
            for path in NOTEBOOKS
        }

    def result(self, stem: str):
        """Wait for one notebook; return (executed notebook or None, stderr)."""
        return self.futures[stem].result()

    def close(self):
        """Cancel the runs that have not started and delete the outputs."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.root, ignore_errors=True)
