"""Training: the loop, schedules, resumable state, run logging and torchrun support.

Entry point: :func:`svqcast.train.loop.train` (also `svqcast.train(...)` and `svqcast train`).
"""

from __future__ import annotations

from svqcast.train.loop import train

__all__ = ["train"]
