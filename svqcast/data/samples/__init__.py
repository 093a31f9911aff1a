"""Embedded real sample files (see docs/data.md for provenance, citations and licences)."""

from __future__ import annotations

from pathlib import Path

SAMPLES_DIR = Path(__file__).resolve().parent


def sample_path(filename: str) -> Path:
    return SAMPLES_DIR / filename
