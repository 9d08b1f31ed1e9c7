"""The ``.swyc`` file: a small versioned header and the range-coded latent.

Layout, little-endian (format version 1):

    offset  size  field
    0       4     magic b"SWYC"
    4       1     format version (1)
    5       8     model identity: the first 8 bytes of the export's weights sha256
                  (``swycc.autoencoders.base.weights_sha256``)
    13      4+4   image width, height (pixels, the original size)
    21      1     latent channels C
    22      2+2   latent height, width
    26      1     quality (the --quality it was made with; informative)
    27      4     quantisation step (float32): latent = symbol * step
    31      8 C   per channel: alphabet lo, hi (int16), Laplace mu, b (float16, symbol units)
    31+8C   4     coded latent length L (bytes)
    35+8C   L     the coded latent (``swycc.codec.entropy``)
    35+8C+L 4     CRC-32 (zlib) of every byte before it

Reading checks, in this order, and names the first problem: too short to be a .swyc file,
magic (a foreign file), version (a future one), truncation, trailing bytes, checksum
(corruption), then the header's values.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from swycc.codec.prior import ChannelParams

MAGIC = b"SWYC"
FORMAT_VERSION = 1
MODEL_ID_BYTES = 8
_FIXED = struct.Struct("<4sB8sIIBHHBf")
_CHANNEL = struct.Struct("<hhee")
_LENGTH = struct.Struct("<I")
_CRC = struct.Struct("<I")
MAX_SIDE = 1 << 20  # pixels; far above what the verbs accept


class CodecFileError(ValueError):
    """A .swyc file that is truncated, corrupted, foreign, of a future version, or made by
    another model than the one decoding it."""


@dataclass(frozen=True)
class SwycFile:
    model_id: bytes  # MODEL_ID_BYTES
    width: int
    height: int
    latent_shape: tuple[int, int, int]  # (C, h, w)
    quality: int
    step: float  # float32 value
    channels: list[ChannelParams]
    payload: bytes

    def header_bytes(self) -> int:
        return _FIXED.size + len(self.channels) * _CHANNEL.size + _LENGTH.size + _CRC.size


def model_id_from_sha256(hexdigest: str) -> bytes:
    return bytes.fromhex(hexdigest)[:MODEL_ID_BYTES]


def pack(f: SwycFile) -> bytes:
    c, h, w = f.latent_shape
    if len(f.channels) != c or len(f.model_id) != MODEL_ID_BYTES:
        raise ValueError("header fields do not match the latent")
    head = _FIXED.pack(MAGIC, FORMAT_VERSION, f.model_id, f.width, f.height, c, h, w,
                       f.quality, f.step)
    head += b"".join(_CHANNEL.pack(p.lo, p.hi, p.mu, p.b) for p in f.channels)
    body = head + _LENGTH.pack(len(f.payload)) + f.payload
    return body + _CRC.pack(zlib.crc32(body))


def unpack(data: bytes, name: str = "file") -> SwycFile:
    """Parse and check a .swyc file's bytes; CodecFileError naming ``name`` and the problem."""
    def bad(msg: str) -> CodecFileError:
        return CodecFileError(f"{name}: {msg}")

    if len(data) < 5 or data[:4] != MAGIC:
        if data[:4] == MAGIC[:len(data[:4])] and len(data) < 5:
            raise bad(f"truncated ({len(data)} bytes; not even a header)")
        raise bad("not a .swyc file (no SWYC magic at its start)")
    version = data[4]
    if version != FORMAT_VERSION:
        newer = "a newer swycc" if version > FORMAT_VERSION else "an unknown writer"
        raise bad(f".swyc format version {version}, made by {newer}; this swycc reads "
                  f"version {FORMAT_VERSION}")
    if len(data) < _FIXED.size:
        raise bad(f"truncated ({len(data)} bytes, shorter than the header)")
    _, _, model_id, width, height, c, h, w, quality, step = _FIXED.unpack_from(data)
    offset = _FIXED.size + c * _CHANNEL.size
    if len(data) < offset + _LENGTH.size:
        raise bad(f"truncated ({len(data)} bytes, shorter than its {c}-channel header)")
    (length,) = _LENGTH.unpack_from(data, offset)
    end = offset + _LENGTH.size + length
    if len(data) < end + _CRC.size:
        raise bad(f"truncated ({len(data)} bytes, its header announces {end + _CRC.size})")
    if len(data) > end + _CRC.size:
        raise bad(f"corrupted: {len(data) - end - _CRC.size} unexpected bytes after its end")
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(data[:end]) != crc:
        raise bad("corrupted (checksum mismatch)")
    channels = [ChannelParams(*_CHANNEL.unpack_from(data, _FIXED.size + i * _CHANNEL.size))
                for i in range(c)]
    problems = []
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and c > 0 and h > 0 and w > 0):
        problems.append(f"size {width}x{height}, latent {c}x{h}x{w}")
    if not (math.isfinite(step) and step > 0):
        problems.append(f"step {step}")
    for i, p in enumerate(channels):
        if p.lo > p.hi or not (math.isfinite(p.mu) and math.isfinite(p.b) and p.b > 0):
            problems.append(f"channel {i} table ({p})")
    if problems:
        raise bad(f"corrupted header: {'; '.join(problems)}")
    return SwycFile(model_id, width, height, (c, h, w), quality, step, channels,
                    bytes(data[offset + _LENGTH.size:end]))


__all__ = ["FORMAT_VERSION", "MAGIC", "CodecFileError", "SwycFile", "model_id_from_sha256",
           "pack", "unpack"]
