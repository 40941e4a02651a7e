"""What the benchmarks say about the machine they ran on (imported by them; not a benchmark)."""
from __future__ import annotations

import os
import platform
import threading
from pathlib import Path

import psutil


def settings(base: dict, args, keys) -> dict:
    """A copy of ``base`` with each of ``keys`` replaced by the command-line value given for it."""
    s = dict(base)
    s.update({key: getattr(args, key) for key in keys if getattr(args, key) is not None})
    return s


def machine() -> str:
    """Cores, CPU model, load, system and Python: enough to compare figures across runs."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} cores, {cpu}, load average {load:.1f} at the end, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


class Peak:
    """Peak resident memory, sampled in a thread every ``every`` seconds: of the largest process
    (``largest``) and of all together (``total``), in bytes, over this process (unless
    ``include_self`` is False) and all its descendants. Workers started by a fork server are
    grandchildren, which ``RUSAGE_CHILDREN`` does not see."""

    def __init__(self, every: float = 0.05, include_self: bool = True):
        self.every, self.include_self = every, include_self
        self.largest = self.total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = psutil.Process()
        while True:
            rss = []
            for p in ([me] if self.include_self else []) + me.children(recursive=True):
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            self.largest = max(self.largest, max(rss, default=0))
            self.total = max(self.total, sum(rss))
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
