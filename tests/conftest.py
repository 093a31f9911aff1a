"""Suite-wide settings.

One intra-op thread per process: on a shared 2-core machine (CI, a laptop running other
work) two OpenMP threads can stall each other by orders of magnitude, and the tiny tensors
of the unit tests gain nothing from a second thread. The environment variable reaches the
CLI subprocesses that end-to-end tests start.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
