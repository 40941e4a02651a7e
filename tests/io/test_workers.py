"""Worker pools: started clean, in order, bounded, and usable from a plain script."""
from __future__ import annotations

import subprocess
import textwrap

from biomeseason.io import workers


def test_bounded_map_keeps_order_and_never_has_more_than_the_window_in_flight():
    submitted, done = [], []

    class Pool:   # a pool that records what is in flight
        _max_workers = 2

        def submit(self, fn, item):
            submitted.append(item)
            assert len(submitted) - len(done) <= 3, "more than the window in flight"

            class Done:
                def result(self_inner):
                    done.append(item)
                    return fn(item)
            return Done()

    assert list(workers.bounded_map(Pool(), lambda x: x * x, range(50), window=3)) == [x * x for x in range(50)]
    assert submitted == list(range(50))


def test_a_script_without_a_main_guard_runs_once_with_worker_processes(tmp_path, python):
    """Workers do not run the caller's script again: no ``if __name__ == "__main__"`` needed."""
    from PIL import Image

    raw = tmp_path / "raw"
    raw.mkdir()
    for i in range(12):
        Image.new("RGB", (40, 40), (20 * i, 100, 50)).save(raw / f"Boreal_Jan_{i:02d}.png")
    script = tmp_path / "mine.py"
    script.write_text(textwrap.dedent(f"""
        print("script started", flush=True)
        from biomeseason.prepare.preprocess import preprocess
        preprocess({str(raw)!r}, {str(tmp_path / 'out')!r}, size=32, min_side=16, workers=2, progress=False)
    """))
    run = subprocess.run([python, str(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("script started") == 1
    assert (tmp_path / "out" / "manifest.csv").is_file()


def test_workers_start_clean_not_as_a_copy_of_the_caller(monkeypatch):
    """Started by the fork server, a worker holds nothing the caller made at run time (its
    threads, their locks, this marker); a forked copy of the caller would."""
    monkeypatch.setattr(workers, "caller_state", "made at run time", raising=False)
    with workers.process_pool(2) as pool:
        seen = list(pool.map(_caller_state, range(2)))
    assert seen == [None, None]


def _caller_state(_):
    return getattr(workers, "caller_state", None)
