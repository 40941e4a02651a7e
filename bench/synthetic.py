"""Speed of the synthetic scene generator on one core.

    python bench/synthetic.py [--size 256] [--n 168]

Prints images/s for rendering alone and for rendering plus writing JPEGs
(single process), by wall clock and by CPU time of this process (the machine
may be shared, so the CPU figure is the one that measures one core). The
target is at least 50 images/s at 256 x 256.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from biomeseason import synthetic  # noqa: E402

TARGET = 50.0  # images/s at 256 px, one core


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="image side (default: 256)")
    p.add_argument("--n", type=int, default=336, help="images to time (default: 336 = 4 per biome-month)")
    args = p.parse_args()

    pairs = [(b, m) for b in synthetic.FILE_PREFIX for m in range(1, 13)]
    synthetic.render_scene(*pairs[0], 0, args.size)          # warm caches
    with Timer() as render:
        for i in range(args.n):
            synthetic.render_scene(*pairs[i % len(pairs)], i, args.size)

    per_class = max(1, args.n // len(pairs))
    with tempfile.TemporaryDirectory() as tmp, Timer() as write:
        paths = synthetic.write_scenes(tmp, per_class=per_class, size=args.size, progress=False)

    print(f"size {args.size}, one process          wall clock   CPU time")
    print(f"render only        images/s: {args.n / render.wall:10.1f} {args.n / render.cpu:10.1f}")
    print(f"render + JPEG file images/s: {len(paths) / write.wall:10.1f} {len(paths) / write.cpu:10.1f}"
          f"   ({len(paths)} files)")
    if args.size == 256:
        ok = len(paths) / write.cpu >= TARGET
        print(f"target {TARGET:.0f} images/s per core (render + JPEG, CPU time): {'met' if ok else 'NOT met'}")
    return 0


class Timer:
    """Wall-clock and process CPU seconds of a block."""

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self._wall
        self.cpu = time.process_time() - self._cpu


if __name__ == "__main__":
    sys.exit(main())
