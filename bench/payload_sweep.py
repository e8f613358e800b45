"""JSON and compression of a session payload: ``python bench/payload_sweep.py [--json]``.

Two RST tables, every figure the median CPU time per call over interleaved rounds:

* ``--json``: on ``peers.py``'s small and large sessions, the standard library's JSON as the
  engine used it before against ``serializers.dumps``/``loads``, with the two parts of ``dumps``
  (the ``marshal`` type check and ``orjson.dumps``) timed alone;
* otherwise, which compressor, level and threshold: for payloads of ``peers.py``'s sessions cut
  to several sizes (JSON as the engine writes it), and the small session with a 200-character
  random token (incompressible data), each candidate's output size and the time to compress and
  to decompress: zlib as the engine used it before (raw deflate, level 1, a 2 KB window below
  4 KB), and zstd at levels -1 to 3 (``django_redisstore.compression``'s library).
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import peers
from bench.peers import rst_grid
from django_redisstore import codec, serializers

LEVELS = (-1, 1, 2, 3)


def payloads() -> dict[str, bytes]:
    rng = random.Random(6)
    small, large = peers.small_session(rng), peers.large_session(rng)
    auth = {k: v for k, v in small.items() if k.startswith("_auth")}
    token = dict(small, token="".join(rng.choices(string.ascii_letters + string.digits, k=200)))
    medium = dict(small, recently_viewed=large["recently_viewed"][:12])
    shapes = {
        "auth keys only": auth,
        "auth + cart": {**auth, "cart": small["cart"]},
        "small": small,
        "small + token": token,
        "medium": medium,
        "large": large,
    }
    return {name: serializers.dumps(data) for name, data in shapes.items()}


def zstd_pair(level: int) -> tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]:
    if sys.version_info >= (3, 14):
        from compression import zstd

        return (lambda p: zstd.compress(p, level)), zstd.decompress
    import zstandard

    compressor, decompressor = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
    return compressor.compress, decompressor.decompress


def timed(op: Callable[[], Any], seconds: float) -> float:
    """CPU us per call of ``op`` (CPU time: other processes on the machine disturb it less)."""
    n, started = 0, time.process_time()
    while True:
        for _ in range(10):
            op()
        n += 10
        elapsed = time.process_time() - started
        if elapsed >= seconds:
            return elapsed / n * 1e6


def json_table(rounds: int, seconds: float) -> str:
    import json
    import marshal

    import orjson

    rng = random.Random(6)
    body = []
    for size, data in (("small", peers.small_session(rng)), ("large", peers.large_session(rng))):
        ours, theirs = serializers.dumps(data), serializers.dumps_stdlib(data)
        cells: dict[str, Callable[[], Any]] = {
            "json encode (before)": lambda d=data: serializers.dumps_stdlib(d),
            "serializers.dumps": lambda d=data: serializers.dumps(d),
            "  marshal type check": lambda d=data: marshal.dumps(d),
            "  orjson.dumps": lambda d=data: orjson.dumps(
                d, default=serializers._refuse, option=serializers._OPTIONS
            ),
            "json decode (before)": lambda p=theirs: json.loads(p.decode("latin-1")),
            "serializers.loads": lambda p=ours: serializers.loads(p),
        }
        times: dict[str, list[float]] = {name: [] for name in cells}
        for r in range(rounds + 1):
            for name, op in cells.items():
                t = timed(op, seconds)
                if r:
                    times[name].append(t)
        for name in cells:
            median = statistics.median(times[name])
            body.append([f"{size} ({len(theirs):,})", name, f"{median:.1f}"])
    return rst_grid(["session (JSON bytes)", "step", "CPU us"], body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--slice", type=float, default=0.02, help="seconds per cell per round")
    parser.add_argument("--json", action="store_true", help="the JSON table instead")
    args = parser.parse_args()
    if args.json:
        print(json_table(args.rounds, args.slice))
        return 0
    candidates: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "zlib 1 (before)": (codec.compress, codec.decompress)
    }
    for level in LEVELS:
        candidates[f"zstd {level}"] = zstd_pair(level)
    cells = []
    for shape, payload in payloads().items():
        for name, (compress, decompress) in candidates.items():
            packed = compress(payload)
            assert decompress(packed) == payload
            cells.append(
                {
                    "shape": shape,
                    "candidate": name,
                    "raw": len(payload),
                    "packed": len(packed),
                    "c": (lambda c=compress, p=payload: c(p)),
                    "d": (lambda d=decompress, p=packed: d(p)),
                    "ct": [],
                    "dt": [],
                }
            )
    for r in range(args.rounds + 1):
        order = cells[r % len(cells) :] + cells[: r % len(cells)]
        for cell in order:
            c, d = timed(cell["c"], args.slice), timed(cell["d"], args.slice)
            if r:
                cell["ct"].append(c)
                cell["dt"].append(d)
    head = ["payload (JSON bytes)", "compressor", "bytes", "ratio", "compress us", "decompress us"]
    body = []
    for cell in cells:
        body.append(
            [
                f"{cell['shape']} ({cell['raw']:,})",
                cell["candidate"],
                f"{cell['packed']:,}",
                f"{cell['packed'] / cell['raw']:.2f}",
                f"{statistics.median(cell['ct']):.1f}",
                f"{statistics.median(cell['dt']):.1f}",
            ]
        )
    print(rst_grid(head, body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
