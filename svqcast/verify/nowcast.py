"""The standard nowcasting reference for radar data: optical-flow extrapolation.

The motion field is pysteps' Lucas-Kanade estimate from the last input frames, and the last
frame is advected along it with pysteps' semi-Lagrangian scheme, one lead at a time; rain
cannot come in from outside the domain (cells advected from beyond the edge get 0, so the
reference is scored on exactly the model's cells). It needs the optional `nowcast` extra
(pysteps with OpenCV); pysteps is the reference implementation nowcasters compare against,
so it is used as it is rather than rewritten.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import numpy as np

from svqcast.errors import MissingExtraError

MOTION_FRAMES = 3  # the last input frames the motion field is estimated from


def _pysteps() -> tuple[Any, Any]:
    """(Lucas-Kanade, semi-Lagrangian) from pysteps, which prints a banner on import."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pysteps import extrapolation, motion
    except ImportError:
        raise MissingExtraError("the optical-flow extrapolation reference", "nowcast", "pysteps") from None
    return motion.get_method("LK"), extrapolation.get_method("semilagrangian")


def available() -> bool:
    try:
        _pysteps()
    except MissingExtraError:
        return False
    return True


def extrapolation_forecast(inputs: np.ndarray, steps: int) -> np.ndarray:
    """(B, steps, C, H, W) extrapolation of physical-unit inputs (B, T_in, C, H, W); T_in >= 2."""
    lucas_kanade, semilagrangian = _pysteps()
    b, t_in, c, h, w = inputs.shape
    out = np.zeros((b, steps, c, h, w), dtype=np.float64)
    frames = np.nan_to_num(np.asarray(inputs, dtype=np.float64), nan=0.0)
    for i in range(b):
        for ch in range(c):
            past = frames[i, max(0, t_in - MOTION_FRAMES):, ch]
            if not np.any(past > 0):  # nothing moves in a dry domain: it stays dry
                continue
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                velocity = lucas_kanade(past, verbose=False)
                ahead = semilagrangian(past[-1], velocity, steps, outval=0.0)
            out[i, :, ch] = np.nan_to_num(np.asarray(ahead, dtype=np.float64), nan=0.0)
    return np.maximum(out, 0.0)


__all__ = ["MOTION_FRAMES", "available", "extrapolation_forecast"]
