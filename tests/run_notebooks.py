"""Executes notebooks top to bottom (nbclient) and fails on any cell error.

usage: run_notebooks.py NOTEBOOK.ipynb...
The notebooks call the `patchtrace` binary on PATH; outputs are not written
back, so the committed notebooks stay free of run-specific output.
"""
import sys
import time

import nbformat
from nbclient import NotebookClient


def main(paths):
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.time()
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
        print(f"notebook {path}: ok ({len(nb.cells)} cells, {time.time() - start:.1f}s)")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1:])
