"""Training: the loop, schedules, resumable state, run logging and torchrun support.

Entry point: :func:`svqcast.training.loop.train` (also `svqcast.train(...)` and `svqcast train`).
"""

from __future__ import annotations

from svqcast.training.loop import train

__all__ = ["train"]
