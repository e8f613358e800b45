"""zstd for session payloads: the standard library's ``compression.zstd`` on Python 3.14+, the
``zstandard`` wheel before (an install requirement there).

Both write and read the same standard zstd frames, so a record written under one Python reads
under the other. Every frame carries its content size (both libraries write it for a one-shot
compression); ``decompress`` refuses a frame without it or declaring more than ``MAX_PAYLOAD``
before allocating anything, and refuses a truncated frame. Records
written by zlib before (``codec.FLAG_ZLIB``) are still read by ``codec``.

The level comes from the sweep in ``bench/README.rst`` (``python bench/payload_sweep.py``):
level 1 compresses in 40 % of the time zlib's level 1 took and decompresses in half, for 4 %
more bytes on small payloads and 15 % fewer on large ones; higher levels cost more time than
the bytes they save, negative ones save time but not bytes.
"""

from __future__ import annotations

import sys
import threading

#: Set in a record's flags byte when its payload is a zstd frame.
FLAG_ZSTD = 0x02
#: A compressed payload never inflates past this many bytes (a guard against zip bombs).
MAX_PAYLOAD = 64 * 1024 * 1024
LEVEL = 1


class CorruptPayload(ValueError):
    """The payload is not one complete zstd frame of at most ``MAX_PAYLOAD`` bytes."""


if sys.version_info >= (3, 14):
    from compression import zstd

    def compress(payload: bytes) -> bytes:
        """``payload`` as one zstd frame."""
        return zstd.compress(payload, LEVEL)

    def _frame_size(data: bytes) -> int | None:
        return zstd.get_frame_info(data).decompressed_size

    def _decompress(data: bytes) -> bytes:
        # One frame only: what follows it is left in unused_data, never inflated.
        decompressor = zstd.ZstdDecompressor()
        payload = decompressor.decompress(data)
        if not decompressor.eof:
            raise CorruptPayload("the compressed payload is truncated")
        return payload

    _Error: type[Exception] = zstd.ZstdError

else:
    import zstandard

    # A context is not to be shared between threads: one of each per thread, made once
    # (making one costs more than compressing a small session).
    _local = threading.local()

    def compress(payload: bytes) -> bytes:
        """``payload`` as one zstd frame."""
        try:
            compressor: zstandard.ZstdCompressor = _local.compressor
        except AttributeError:
            compressor = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
        return compressor.compress(payload)

    def _frame_size(data: bytes) -> int | None:
        size = zstandard.frame_content_size(data)
        return None if size < 0 else size

    def _decompress(data: bytes) -> bytes:
        # The first frame only, into a buffer of its declared size (checked by the caller);
        # libzstd fails a frame whose content is not that size. Refusing bytes after the frame
        # (allow_extra_data=False) would double the cost of a small read: the MAC already
        # guarantees that this package wrote them, and it writes none.
        try:
            decompressor: zstandard.ZstdDecompressor = _local.decompressor
        except AttributeError:
            decompressor = _local.decompressor = zstandard.ZstdDecompressor()
        return decompressor.decompress(data)

    _Error = zstandard.ZstdError


def decompress(data: bytes) -> bytes:
    """The payload in the zstd frame ``data``; raises ``CorruptPayload`` unless ``data`` starts
    with one complete frame declaring its size, at most ``MAX_PAYLOAD`` bytes."""
    try:
        size = _frame_size(data)
        if size is None or size > MAX_PAYLOAD:
            raise CorruptPayload("the compressed payload does not declare a size within bounds")
        payload = _decompress(data)
    except _Error as e:
        raise CorruptPayload(f"the payload does not decompress: {e}") from e
    if len(payload) != size:
        raise CorruptPayload("the compressed payload is not the size it declares")
    return payload
