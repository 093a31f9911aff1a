"""Video frames without OpenCV: a RIFF/AVI container parser, JPEG frame folders (Pillow).

The AVI parser reads the `avih`/`strh`/`strf` headers and the `movi` video chunks itself.
Uncompressed DIB frames (bottom-up BGR or 8-bit grey) and MJPEG frames (each chunk is a
JPEG, decoded by Pillow) need nothing else. MPEG-4 ASP (XviD/DivX, the codec of the KTH
and OpenSTL example files) needs a real decoder: PyAV (`pip install 'svqcast[video]'`).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svqcast.errors import DataError, MissingExtraError


@dataclass
class AviInfo:
    width: int
    height: int
    frames: int  # from the main header
    fps: float
    fourcc: str  # stream handler / compression, e.g. "XVID", "MJPG", "DIB "
    bit_count: int
    chunks: list[tuple[int, int]] = field(default_factory=list)  # (offset, size) of video chunks


def _chunks(buf: bytes, start: int, end: int, path: Path):
    pos = start
    while pos + 8 <= end:
        cid = buf[pos:pos + 4]
        (size,) = struct.unpack("<I", buf[pos + 4:pos + 8])
        if pos + 8 + size > len(buf):
            raise DataError(f"{path}: truncated AVI (chunk {cid!r} at byte {pos} runs past the end of the file)")
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def read_avi_info(path: str | Path) -> AviInfo:
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if len(buf) < 12 or buf[:4] != b"RIFF" or buf[8:12] != b"AVI ":
        raise DataError(f"{path}: not an AVI file (no RIFF AVI header)")
    info = AviInfo(0, 0, 0, 0.0, "", 0)
    video_stream = None
    stream_no = -1
    for cid, off, size in _chunks(buf, 12, len(buf), path):
        if cid != b"LIST":
            continue
        kind = buf[off:off + 4]
        if kind == b"hdrl":
            for c2, o2, s2 in _chunks(buf, off + 4, off + size, path):
                if c2 == b"avih":
                    usec, = struct.unpack("<I", buf[o2:o2 + 4])
                    info.fps = 1e6 / usec if usec else 0.0
                    info.frames, = struct.unpack("<I", buf[o2 + 16:o2 + 20])
                    info.width, info.height = struct.unpack("<II", buf[o2 + 32:o2 + 40])
                elif c2 == b"LIST" and buf[o2:o2 + 4] == b"strl":
                    stream_no += 1
                    for c3, o3, _s3 in _chunks(buf, o2 + 4, o2 + s2, path):
                        if c3 == b"strh" and buf[o3:o3 + 4] == b"vids" and video_stream is None:
                            video_stream = stream_no
                            info.fourcc = buf[o3 + 4:o3 + 8].decode("latin-1")
                        elif c3 == b"strf" and video_stream == stream_no:
                            bi = struct.unpack("<IiiHHI", buf[o3:o3 + 20])
                            info.width, info.height, info.bit_count = bi[1], abs(bi[2]), bi[4]
                            comp = struct.pack("<I", bi[5])
                            if bi[5] == 0:
                                info.fourcc = "DIB "
                            elif comp.strip(b"\0"):
                                info.fourcc = comp.decode("latin-1")
                            info.bit_count = bi[4]
                            info.height_sign = bi[2]  # type: ignore[attr-defined]
        elif kind == b"movi":
            tag = f"{video_stream or 0:02d}".encode()
            for c2, o2, s2 in _chunks(buf, off + 4, off + size, path):
                if c2 == b"LIST" and buf[o2:o2 + 4] == b"rec ":
                    for c3, o3, s3 in _chunks(buf, o2 + 4, o2 + s2, path):
                        if c3[:2] == tag and c3[2:] in (b"dc", b"db") and s3 > 0:
                            info.chunks.append((o3, s3))
                elif c2[:2] == tag and c2[2:] in (b"dc", b"db") and s2 > 0:
                    info.chunks.append((o2, s2))
    if video_stream is None or not info.width:
        raise DataError(f"{path}: AVI has no video stream")
    return info


def read_avi(path: str | Path, *, gray: bool = True) -> np.ndarray:
    """Frames as uint8 (T, H, W) grey, or (T, H, W, 3) RGB with `gray=False`."""
    path = Path(path)
    info = read_avi_info(path)
    four = info.fourcc.upper()
    if four in ("DIB ", "RAW ", "RGB ") or four.strip("\0") == "":
        buf = path.read_bytes()
        frames = [_dib_frame(buf[o:o + s], info, path) for o, s in info.chunks]
    elif four in ("MJPG", "JPEG", "AVRN", "LJPG"):
        from PIL import Image

        buf = path.read_bytes()
        frames = []
        for o, s in info.chunks:
            try:
                frames.append(np.asarray(Image.open(io.BytesIO(buf[o:o + s])).convert("RGB")))
            except Exception as exc:
                raise DataError(f"{path}: corrupt MJPEG frame at byte {o} ({type(exc).__name__})") from None
    else:
        frames = _decode_with_av(path, four, gray)
        if frames and gray:  # PyAV's luma plane: exactly what `format="gray"` decoders give
            return np.stack(frames)
    if not frames:
        raise DataError(f"{path}: AVI has no video frames")
    rgb = np.stack(frames)
    return to_gray(rgb) if gray else rgb


def _dib_frame(data: bytes, info: AviInfo, path: Path) -> np.ndarray:
    w, h, bits = info.width, info.height, info.bit_count or 24
    if bits not in (8, 24, 32):
        raise DataError(f"{path}: uncompressed AVI with {bits} bits per pixel is not supported")
    bpp = bits // 8
    stride = (w * bpp + 3) & ~3
    if len(data) < stride * h:
        raise DataError(f"{path}: truncated frame ({len(data)} bytes, need {stride * h})")
    rows = np.frombuffer(data[:stride * h], np.uint8).reshape(h, stride)[:, :w * bpp].reshape(h, w, bpp)
    if getattr(info, "height_sign", 1) > 0:  # positive height: bottom-up rows
        rows = rows[::-1]
    if bpp == 1:
        return np.repeat(rows, 3, axis=2)
    return rows[:, :, 2::-1].copy()  # BGR(A) -> RGB


def _decode_with_av(path: Path, fourcc: str, gray: bool) -> list[np.ndarray]:
    try:
        import av
    except ImportError:
        raise MissingExtraError(f"Decoding {fourcc!r} video ({path.name})", "video", "av") from None
    try:
        with av.open(str(path)) as container:
            fmt = "gray" if gray else "rgb24"
            return [f.to_ndarray(format=fmt) for f in container.decode(video=0)]
    except Exception as exc:
        raise DataError(f"{path}: cannot decode {fourcc!r} video ({type(exc).__name__}: {exc})") from None


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Grey from RGB the way KTH's frames are used upstream: channel 0 (the clips are grey
    stored as RGB, so all channels are equal)."""
    return np.ascontiguousarray(rgb[..., 0])


def read_jpg(path: str | Path, *, size: tuple[int, int] | None = None, gray: bool = False,
             resample: str = "bilinear") -> np.ndarray:
    """One JPEG as uint8 RGB (H, W, 3) or channel 0 (H, W), optionally resized to (H, W)."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")  # type: ignore[assignment]
            if size is not None and im.size != (size[1], size[0]):
                method = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}[resample]
                im = im.resize((size[1], size[0]), method)  # type: ignore[assignment]
            arr = np.asarray(im)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except Exception as exc:
        raise DataError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from None
    return np.ascontiguousarray(arr[..., 0]) if gray else arr
