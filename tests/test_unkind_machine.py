"""When the machine is not kind: a parent killed with -9, a full disk, two runs at once, too many workers.

Each test starts real commands (the CLI in a subprocess, or ``cli()`` in this
process) on tiny synthetic files, and checks what a user would see: no process
left behind, one sentence and the exit code, the previous output untouched,
no temporary file, the first run's pid.
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from test_predict import make_checkpoint, random_image
from test_preprocess import photo, save, tree_hashes

from biomeseason.__main__ import main as cli
from biomeseason.io import files
from biomeseason.labels import MONTH_ABBR

ROOT = Path(__file__).resolve().parents[1]
LINUX = sys.platform.startswith("linux")
PRE = ["--size", "32", "--min-side", "16", "--no-progress"]
TRAIN = ["--image-size", "32", "--batch-size", "16", "--device", "cpu", "--no-progress"]
CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
needs_two_cpus = pytest.mark.skipif(CPUS < 2,
                                    reason="one CPU: --workers is capped at 1 and no worker process starts")


# ---- files made here ------------------------------------------------------------------

@pytest.fixture(scope="module")
def busy_raw(tmp_path_factory) -> Path:
    """400 photos that keep two workers busy for seconds: 20 distinct large noise PNGs,
    each under 20 names (hard links, so they cost no disk)."""
    import numpy as np

    raw = tmp_path_factory.mktemp("busy") / "raw"
    raw.mkdir()
    first = []
    for i in range(400):
        path = raw / f"{['Boreal', 'DV'][i % 2]}_{MONTH_ABBR[i % 12].capitalize()}_{i:04d}.png"
        if i < 20:
            noise = np.random.default_rng(i).integers(0, 256, (750, 1000, 3), dtype=np.uint8)
            Image.fromarray(noise).save(path, compress_level=1)
            first.append(path)
        else:
            os.link(first[i % 20], path)
    return raw


@pytest.fixture
def small_raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    for i in range(24):
        save(photo(i, (96, 72)), raw / f"{['Boreal', 'DV'][i % 2]}_{MONTH_ABBR[i % 12].capitalize()}_{i:02d}.jpg",
             quality=95)
    return raw


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "best.pt")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(300):
        random_image(seed=i).save(folder / f"img_{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def busy_photos(photos, tmp_path_factory) -> Path:
    """3,000 photos that keep predict busy for minutes, however fast it gets (300 took 13 s): each of
    ``photos`` under ten names (hard links, so they cost no disk). Runs that use them are stopped."""
    folder = tmp_path_factory.mktemp("busy_photos")
    for i in range(3000):
        os.link(photos / f"img_{i % 300:03d}.png", folder / f"img_{i:04d}.png")
    return folder


def command(name: str, out: Path, busy_raw=None, small_raw=None, tiny_processed=None, photos=None,
            busy_photos=None, checkpoint=None, busy=False) -> list[str]:
    """The CLI of one command writing into ``out``; ``busy``: one that runs for a while with workers."""
    head = [sys.executable, "-m", "biomeseason", name]
    if name == "preprocess":
        return head + ["--raw", str(busy_raw if busy else small_raw), "--out", str(out), "--workers", "2", *PRE]
    if name == "predict":
        return head + [str(busy_photos if busy else photos), "--model", str(checkpoint), "--out", str(out),
                       "--device", "cpu", "--workers", "2", *(["--batch-size", "1", "--tta"] if busy else [])]
    return head + ["--data", str(tiny_processed), "--out", str(out), "--epochs", "200" if busy else "1",
                   "--workers", "1" if busy else "0", *TRAIN]


# ---- 1. a parent killed with SIGKILL takes its workers with it ------------------------------

def session(sid: int) -> list:
    """The live processes of a session (zombies are gone, only not yet reaped)."""
    import psutil

    found = []
    for p in psutil.process_iter(["status"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (ProcessLookupError, PermissionError):
            pass
    return found


@pytest.mark.slow
@needs_two_cpus
@pytest.mark.skipif(not LINUX, reason="finds the run's processes by session id (Linux)")
@pytest.mark.parametrize("name, helpers", [
    ("preprocess", 4),   # the resource tracker, the fork server and its two workers
    ("predict", 4),      # the same, decoding images
    ("train", 2),        # the DataLoader workers of training and of validation
])
def test_no_process_of_a_run_outlives_it_when_it_is_killed_with_sigkill(
        name, helpers, busy_raw, tiny_processed, busy_photos, checkpoint, tmp_path, spawn):
    import psutil

    cmd = command(name, tmp_path / ("out.csv" if name == "predict" else "out"), busy_raw=busy_raw,
                  tiny_processed=tiny_processed, busy_photos=busy_photos, checkpoint=checkpoint, busy=True)
    process = spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
                    env={**os.environ, "OMP_NUM_THREADS": "1"})
    found, deadline = [], time.monotonic() + 240
    while len(found) < helpers and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            found = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            break
    assert process.poll() is None, f"the run ended before its workers were seen: {process.stderr.read()[-2000:]}"
    assert len(found) >= helpers
    process.kill()   # SIGKILL: no handler of ours runs
    process.wait(timeout=30)
    deadline = time.monotonic() + 3   # "within a second or two", with room for a loaded machine
    while session(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [" ".join(p.cmdline())[:120] for p in session(process.pid)]
    assert not left, f"still running 3 s after the parent was killed: {left}"


def test_a_worker_ends_when_the_process_it_was_started_for_ends(tmp_path, spawn):
    """``end_with`` alone: a process told to end with a sleeping parent ends soon after it is killed."""
    script = ("import os, sys, time\n"
              "from biomeseason.io.workers import end_with\n"
              "parent = int(sys.argv[1])\n"
              "end_with(parent)\n"
              "print('watching', flush=True)\n"
              "time.sleep(60)\n")
    parent = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    child = subprocess.Popen([sys.executable, "-c", script, str(parent.pid)], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "watching"
        parent.kill()
        parent.wait()
        assert child.wait(timeout=3) != 0
    finally:
        child.kill()
        child.wait()


# ---- 2. a full disk, a quota, a size limit, a read-only file system ---------------------------

@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS])
def test_no_room_to_write_is_one_sentence_and_exit_code_1(code, small_raw, tmp_path, monkeypatch, capsys):
    out = tmp_path / "processed"
    assert cli(["preprocess", "--raw", str(small_raw), "--out", str(out), "--workers", "1", *PRE]) == 0
    before = tree_hashes(out)
    save(photo(99, (96, 72)), small_raw / "Boreal_Jan_new.jpg")
    capsys.readouterr()

    def no_room(self, *args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Image.Image, "save", no_room)
    assert cli(["preprocess", "--raw", str(small_raw), "--out", str(out), "--workers", "1", *PRE]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: cannot write {out}: {files.OUT_OF_SPACE[code]}; nothing half-written was left " \
                  "and the previous version is untouched"
    assert tree_hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed", "raw"]   # no build folder, no lock


@pytest.mark.skipif(not hasattr(os, "statvfs"), reason="no statvfs: read-only file systems are not told apart")
def test_an_output_on_a_read_only_file_system_is_refused_as_such(small_raw, tmp_path, monkeypatch, capsys):
    """A read-only mount needs root to make, so the file system says so through statvfs here; the
    run must name it instead of 'permission denied'."""
    readonly = tmp_path / "mounted"
    readonly.mkdir()
    real_access, real_statvfs = os.access, os.statvfs

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "access", lambda p, mode, **kw: Path(p) != readonly and real_access(p, mode, **kw))
    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly() if Path(p) == readonly else real_statvfs(p))
    assert cli(["preprocess", "--raw", str(small_raw), "--out", str(readonly / "processed"), *PRE]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot write {readonly / 'processed'}: the file system "
                                              "is read-only;")
    assert list(readonly.iterdir()) == []


def _limit_file_size(limit: int):
    def apply():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write past the limit raises EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return apply


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="no RLIMIT_FSIZE here")
@pytest.mark.parametrize("name", ["preprocess", "train", "predict"])
def test_a_file_size_limit_ends_each_command_in_one_sentence_and_keeps_the_previous_output(
        name, small_raw, tiny_processed, photos, checkpoint, tmp_path, python):
    out = tmp_path / ("pred.csv" if name == "predict" else "out")
    if name == "preprocess":
        assert cli(["preprocess", "--raw", str(small_raw), "--out", str(out), "--workers", "1", *PRE]) == 0
    elif name == "train":   # a previous run's files (a marked folder of ours), which a failed save must keep
        out.mkdir()
        files.mark_ours(out)
        for checkpoint_name in ("best.pt", "last.pt"):
            (out / checkpoint_name).write_bytes(b"the previous run's weights")
    else:
        out.write_text("path,biome,biome_p,month,month_p,season\nprevious,run,0,1,0,winter\n")
    before = tree_hashes(out) if out.is_dir() else {out.name: out.read_bytes()}
    cmd = command(name, out, small_raw=small_raw, tiny_processed=tiny_processed, photos=photos,
                  checkpoint=checkpoint)
    if name == "preprocess":
        cmd[cmd.index("32")] = "256"   # stored images now larger than the limit
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                         preexec_fn=_limit_file_size(1024), env={**os.environ, "OMP_NUM_THREADS": "1"})
    last = run.stderr.strip().splitlines()[-1]
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    # train names the file in its --out folder that could not be written; the others their --out
    assert last.startswith(f"error: cannot write {out}"), last
    assert last.endswith(": a file would grow past the file-size limit (see `ulimit -f`); nothing half-written "
                         "was left and the previous version is untouched"), last
    after = tree_hashes(out) if out.is_dir() else {out.name: out.read_bytes()}
    assert {k: after.get(k) for k in before} == before   # train may add its small config.json
    left = [p.name for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".lock", ".partial")) or ".tmp-" in p.name]
    assert not left


APPEND = """
import resource, sys
from biomeseason.io import files
path = sys.argv[1]
files.write_text(path, "a,b\\n")
with files.appending_rows(path, ["a", "b"]) as append:
    append([{"a": 1, "b": 2}])
    # Python ignores SIGXFSZ, so a write past the limit raises EFBIG
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(open(path).read()) + 5, hard))
    try:
        append([{"a": 3, "b": 4}, {"a": 5, "b": 6}])   # 8 bytes: 5 fit, then the limit
    except OSError as e:
        print(e.errno)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="no RLIMIT_FSIZE here")
def test_rows_cut_short_by_a_full_disk_are_taken_back(tmp_path, python):
    """A streamed CSV (predict's partial file) holds whole rows only, whatever stops a write half way."""
    path = tmp_path / "rows.csv"
    run = subprocess.run([python, "-c", APPEND, str(path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert run.stdout.strip() == str(errno.EFBIG), run.stderr
    assert path.read_text() == "a,b\n1,2\n"


# ---- 3. one writer per output -----------------------------------------------------------------

def writing(name: str, out: Path) -> bool:
    """Whether a run of ``name`` has begun to write into ``out`` (with or without a lock)."""
    if name == "preprocess":
        return bool(list(out.parent.glob(f"{out.name}.tmp-*")))   # its build folder
    if name == "predict":
        return out.with_name(out.name + ".partial").exists()
    return (out / "config.json").exists()


@pytest.mark.slow
@needs_two_cpus
@pytest.mark.parametrize("name", ["preprocess", "train", "predict"])
def test_a_second_run_into_the_same_output_is_refused_naming_the_first_ones_pid(
        name, busy_raw, small_raw, tiny_processed, photos, busy_photos, checkpoint, tmp_path, spawn):
    out = tmp_path / ("pred.csv" if name == "predict" else "out")
    given = dict(busy_raw=busy_raw, small_raw=small_raw, tiny_processed=tiny_processed, photos=photos,
                 busy_photos=busy_photos, checkpoint=checkpoint)
    first = spawn(command(name, out, busy=True, **given), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                  text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while not writing(name, out) and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.poll() is None, first.communicate()[1][-2000:]
    second = subprocess.run(command(name, out, **given), capture_output=True, text=True, timeout=300, cwd=ROOT,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert second.returncode == 2, (second.stderr[-2000:], "the first run " + ("was" if first.poll() is None
                                                                               else "was no longer") + " running")
    assert second.stderr.startswith(f"error: --out {out} is being written by another run (pid {first.pid}, started ")
    assert len(second.stderr.strip().splitlines()) == 1
    if name == "preprocess":   # the first run is not disturbed
        assert first.wait(timeout=300) == 0, first.communicate()[1][-2000:]
    else:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 130, first.communicate()[1][-3000:]
    assert not files.lock_path(out).exists(), "the lock outlived its run"


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_note(small_raw, tmp_path, python, capsys):
    gone = subprocess.run([python, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    out = tmp_path / "processed"
    (tmp_path / ".processed.lock").write_text(f'{{"pid": {pid}, "started": "2026-01-01 00:00:00"}}\n')
    assert cli(["preprocess", "--raw", str(small_raw), "--out", str(out), "--workers", "1", *PRE]) == 0
    err = capsys.readouterr().err
    assert f"note: --out {out}: taking over the lock of run pid {pid}, started 2026-01-01 00:00:00, which is " \
           "no longer running" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["processed", "raw"]


# ---- 4. --workers at most the CPU count -------------------------------------------------------

@pytest.mark.parametrize("name", ["preprocess", "predict"])
def test_more_workers_than_cpus_are_capped_with_one_note(name, small_raw, checkpoint, tmp_path, monkeypatch,
                                                         capsys):
    from biomeseason.predict import scene
    from biomeseason.prepare import preprocess

    module = preprocess if name == "preprocess" else scene
    asked, real_pool = [], module.process_pool

    def pool(n, *args, **kwargs):   # never starts more than the CPUs, even on code without the cap
        asked.append(n)
        return real_pool(min(n, CPUS), *args, **kwargs)

    monkeypatch.setattr(module, "process_pool", pool)
    cpus = CPUS
    if name == "preprocess":
        args = ["preprocess", "--raw", str(small_raw), "--out", str(tmp_path / "out"), *PRE]
    else:
        args = ["predict", str(small_raw), "--model", str(checkpoint), "--out", str(tmp_path / "p.csv"),
                "--device", "cpu"]
    assert cli([*args, "--workers", "512"]) == 0
    err = capsys.readouterr().err
    assert err.count("--workers 512 is more than") == 1
    assert f"note: --workers 512 is more than the {cpus} CPU(s) here; using {cpus}" in err
    assert asked or cpus == 1   # the workers were started (one CPU: this process does the work)
    assert all(n <= cpus for n in asked)
