"""What the benchmarks say about the machine they ran on (imported by them; not a benchmark)."""
from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import threading
from datetime import datetime
from pathlib import Path

import psutil

RESULTS = Path(__file__).resolve().parent / "results"
RUN_HEADING = "## Run of "   # each run's section starts so; the newest comes first


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


def pin_threads(n: int) -> int:
    """Pin every thread pool a bench uses (torch, BLAS/OpenMP through threadpoolctl) to ``n``,
    print it, and return it; child processes, and torch if it is imported later, take it
    from the environment (a bench without torch does not load it for this)."""
    from threadpoolctl import threadpool_limits

    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(n)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    threadpool_limits(limits=n)
    said = f"torch {torch.get_num_threads()}; " if torch is not None else ""
    print(f"threads pinned to {n} ({said}BLAS/OpenMP {n}); {os.cpu_count()} cores", flush=True)
    return n


def command() -> str:
    """The command line that ran this bench, as one would type it from the repository."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path(__file__).resolve().parents[1])
    except ValueError:
        pass
    return shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])


def record(bench: str, title: str, body: str, threads: int | None = None, path: Path | None = None) -> Path:
    """Put this run at the top of ``bench/results/<bench>.md`` (or ``path``: a trial run's own file),
    newest first, under a heading with the date, the machine, the thread count and the command;
    earlier runs are kept below it."""
    from biomeseason.io import files

    path = Path(path) if path is not None else RESULTS / f"{bench}.md"
    earlier = path.read_text() if path.exists() else ""
    # Runs written before this layout start at their first line; keep them whole, below.
    runs = earlier.split("\n", 1)[1].lstrip("\n") if earlier.startswith("# ") else earlier
    stamp = datetime.now().isoformat(timespec="seconds")
    head = [f"{RUN_HEADING}{stamp}", "", f"- machine: {machine()}"]
    if threads is not None:
        head.append(f"- threads: {threads}")
    head += [f"- command: `{command()}`", ""]
    text = "\n".join([f"# {title}", "", *head, body.strip(), "", runs]).rstrip() + "\n"
    files.write_text(path, re.sub(r"\n{3,}", "\n\n", text))
    print(f"wrote {path}")
    return path


def report(bench: str, title: str, lines: list[str], threads: int | None = None) -> Path:
    """Print a report's lines and ``record`` them."""
    body = "\n".join(lines)
    print(body, flush=True)
    return record(bench, title, body, threads)


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
