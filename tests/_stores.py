"""Helpers for tests that open or damage prepared zarr stores."""

from __future__ import annotations

from pathlib import Path


def data_chunks(prepared: Path) -> list[Path]:
    """The chunk files of a prepared store's `data`, in time order (the last holds test frames)."""
    base = Path(prepared) / "store.zarr" / "data" / "c"
    return sorted((p for p in base.rglob("*") if p.is_file()),
                  key=lambda p: tuple(int(k) for k in p.relative_to(base).parts))
