"""Zarr stores through xarray + zarr + fsspec: local paths and https:// / gs:// URLs alike.

WeatherBench 2 publishes ERA5 as consolidated zarr on Google Cloud Storage, readable
anonymously over HTTPS. Opening is lazy (only the metadata is fetched); selecting a few
variables, levels and years and then loading reads exactly the chunks that cover them,
concurrently (zarr's async store over fsspec's HTTP filesystem). Failures become one-line
errors: an unreachable host is a NetworkError (exit 4), a URL that is not a zarr store a
DataError (exit 3).
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from svqcast.constants import network_timeout
from svqcast.errors import DataError, MissingExtraError, NetworkError

T = TypeVar("T")


def public_url(location: str) -> str:
    """gs://BUCKET/PATH -> https://storage.googleapis.com/BUCKET/PATH: public buckets (such
    as WeatherBench 2) read anonymously over plain HTTPS, without gcsfs or credentials."""
    loc = str(location)
    return "https://storage.googleapis.com/" + loc[len("gs://"):] if loc.startswith("gs://") else loc


def _network_error(exc: BaseException) -> bool:
    try:
        import aiohttp

        if isinstance(exc, aiohttp.ClientError):
            return True
    except ImportError:  # pragma: no cover - aiohttp comes with the zarr extra
        pass

    return isinstance(exc, (asyncio.TimeoutError, ConnectionError, TimeoutError)) or (
        isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError)))


DOWNLOAD_HINT = "check the network or `mirror`, or adopt local files with `from_path` PATH"


def guarded(location: str, what: str, call: Callable[[], T], hint: str = DOWNLOAD_HINT) -> T:
    """Run `call` (an open or a load) with its failures turned into one-line errors; `hint`
    ends the message of a network failure (what the user of this command can do)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # consolidated-metadata and codec chatter
            return call()
    except (DataError, NetworkError, MissingExtraError):
        raise
    except ImportError as exc:
        raise MissingExtraError(f"Reading {location}", "zarr", exc.name or "fsspec") from None
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        status = getattr(exc, "status", None)  # aiohttp.ClientResponseError: the server did answer
        if "://" in location and isinstance(status, int) and status >= 500:
            raise NetworkError(f"{location}: the server answered HTTP {status} while {what} (a server-side "
                               f"error; try again later); {hint}") from None
        if "://" in location and _network_error(exc):
            kind = "no answer in time" if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) else "unreachable"
            raise NetworkError(f"{location}: {kind} while {what} ({reason}); {hint}") from None
        raise DataError(f"{location}: cannot read as a zarr store while {what} ({reason})") from None


def open_zarr(location: str, hint: str = DOWNLOAD_HINT) -> Any:
    """A lazy xarray.Dataset of the zarr store at `location` (path or URL); nothing is loaded."""
    import xarray as xr

    url = public_url(location)
    storage = http_options() if url.startswith(("http://", "https://")) else None
    return guarded(location, "opening",
                   lambda: xr.open_zarr(url, chunks=None, consolidated=None, storage_options=storage), hint)


def http_options() -> dict[str, Any]:
    """fsspec HTTP options with connect and read timeouts of seconds, so a server that accepts and
    never answers fails in one line instead of freezing the command ($SVQCAST_NETWORK_TIMEOUT)."""
    import aiohttp

    read = network_timeout()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(10.0, read), sock_read=read)
    return {"client_kwargs": {"timeout": timeout}}


def load(location: str, obj: Any) -> Any:
    """`obj.load()` (the selected chunks, fetched concurrently) with one-line errors."""
    return guarded(location, "reading", obj.load)
