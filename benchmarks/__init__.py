"""Benchmarks of dcl_prob: accuracy against exact and Monte Carlo references,
speed against NetKet, and scaling with lattice size and chain count.

Run every group and regenerate the tables in ``docs/benchmarks.md``::

    python -m benchmarks --quick      # a few minutes on 2 CPU cores
    python -m benchmarks --full       # about 40 minutes on 2 CPU cores

The scripts beside this file (``log_z.py``, ``variational.py``, ...) are
separate benchmarks run by path; each prints its own JSON.
"""

import os

# NetKet turns on float64 for the whole process when it is imported (its
# NETKET_ENABLE_X64 setting defaults to on in netket 3.23), which would change
# the dtype of every default-typed array of dcl_prob measured in the same run.
# Both sides of a comparison run in float32 unless the caller overrides this.
os.environ.setdefault("NETKET_ENABLE_X64", "0")
