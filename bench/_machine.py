"""What the benchmarks say about the machine they ran on (imported by them; not a benchmark)."""
from __future__ import annotations

import os
import platform
from pathlib import Path


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
