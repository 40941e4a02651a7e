"""The one writer: atomic, never over an input, never into a folder that is not ours."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from biomeseason.io import files
from biomeseason.io.files import UsageError


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path):
    path = tmp_path / "out.txt"
    files.write_text(path, "old\n")

    def half_then_fail(f):
        f.write("new, but not finished")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        files.atomic_write(path, half_then_fail, text=True)
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary file left


def test_atomic_path_leaves_nothing_on_ctrl_c(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_path(tmp_path / "model.pt") as tmp:
            tmp.write_bytes(b"partial")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_written_files_are_readable_by_others(tmp_path):
    path = files.write_text(tmp_path / "a.txt", "x")
    assert os.stat(path).st_mode & 0o044 == 0o044


def test_csv_is_byte_identical_for_identical_tables(tmp_path):
    table = pd.DataFrame({"source": ["a.jpg", "Icon\r"], "n": [1, 2]})
    a = files.write_csv(tmp_path / "a.csv", table).read_bytes()
    b = files.write_csv(tmp_path / "b.csv", table.copy()).read_bytes()
    assert a == b and b"\r\n" not in a
    assert pd.read_csv(tmp_path / "a.csv")["source"].tolist() == ["a.jpg", "Icon\r"]


def test_write_rows_writes_nothing_for_no_rows(tmp_path):
    path = tmp_path / "preds.csv"
    path.write_text("path,biome\nx.jpg,tundra\n")
    assert files.write_rows(path, iter([])) == 0
    assert path.read_text() == "path,biome\nx.jpg,tundra\n"
    assert files.write_rows(path, [{"path": "y.jpg", "biome": "desert"}]) == 1
    assert path.read_text() == "path,biome\ny.jpg,desert\n"


def test_claim_dir_marks_new_and_empty_folders_and_refuses_foreign_ones(tmp_path):
    new = files.claim_dir(tmp_path / "new" / "run")
    assert files.is_ours(new)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert files.is_ours(files.claim_dir(empty))
    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.docx").write_text("years of work")
    with pytest.raises(UsageError, match="--force"):
        files.claim_dir(foreign)
    files.claim_dir(foreign, force=True)
    assert (foreign / "chapter1.docx").read_text() == "years of work"
    with pytest.raises(UsageError, match="is a file"):
        files.claim_dir(foreign / "chapter1.docx")


@pytest.mark.parametrize("make, message", [
    (lambda t: (t / "d").mkdir() or t / "d", "is a folder"),
    (lambda t: t / "in.jpg", "one of the inputs"),
])
def test_check_output_file_refusals(tmp_path, make, message):
    (tmp_path / "in.jpg").write_bytes(b"photo")
    with pytest.raises(UsageError, match=message):
        files.check_output_file(make(tmp_path), inputs=[tmp_path / "in.jpg"])
    assert (tmp_path / "in.jpg").read_bytes() == b"photo"


def test_input_reached_through_a_link_is_still_an_input(tmp_path):
    (tmp_path / "in.csv").write_text("keep")
    (tmp_path / "link.csv").symlink_to(tmp_path / "in.csv")
    with pytest.raises(UsageError, match="one of the inputs"):
        files.check_output_file(tmp_path / "link.csv", inputs=[tmp_path / "in.csv"], force=True)


def test_existing_foreign_file_needs_force_but_ours_is_replaced(tmp_path):
    theirs = tmp_path / "results.csv"
    theirs.write_text("name,value\nimportant,1\n")
    with pytest.raises(UsageError, match="--force"):
        files.check_output_file(theirs, looks_ours=files.csv_header_is(["path", "biome"]))
    ours = tmp_path / "preds.csv"
    ours.write_text("path,biome,biome_p\nx.jpg,tundra,0.9\n")
    assert files.check_output_file(ours, looks_ours=files.csv_header_is(["path", "biome"])) == ours
    assert files.check_output_file(theirs, force=True) == theirs


def test_unwritable_output_is_refused(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(UsageError, match="permission denied"):
            files.check_output_file(locked / "out.csv")
    finally:
        locked.chmod(0o700)


def test_suffix_is_checked(tmp_path):
    with pytest.raises(UsageError, match=r"\.csv"):
        files.check_output_file(tmp_path / "out.txt", suffixes=[".csv"])


def test_remove_ours_deletes_only_marked_folders(tmp_path):
    ours = files.claim_dir(tmp_path / "run")
    (ours / "model.pt").write_bytes(b"w")
    theirs = tmp_path / "photos"
    theirs.mkdir()
    (theirs / "a.jpg").write_bytes(b"x")
    assert files.remove_ours(ours) and not ours.exists()
    with pytest.raises(UsageError, match="not written by biomeseason"):
        files.remove_ours(theirs)
    assert (theirs / "a.jpg").exists()


def test_make_clean_command_keeps_a_users_folder(tmp_path, python):
    theirs = tmp_path / "processed"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("mine")
    ours = files.claim_dir(tmp_path / "demo")
    run = subprocess.run([python, "-m", "biomeseason", "clean", str(ours), str(theirs)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert not ours.exists() and (theirs / "notes.txt").read_text() == "mine"
    assert "Traceback" not in run.stderr and "not written by biomeseason" in run.stderr


def test_sigterm_runs_cleanup_and_leaves_no_temporary_file(tmp_path, spawn):
    script = textwrap.dedent(f"""
        import sys, time
        from biomeseason.io import files
        with files.terminate_as_interrupt():
            try:
                with files.atomic_path({str(tmp_path / 'big.bin')!r}) as tmp:
                    tmp.write_bytes(b"x" * 1000)
                    print("writing", flush=True)
                    time.sleep(30)
            except KeyboardInterrupt:
                print("cleaned up", flush=True)
                sys.exit(130)
    """)
    proc = spawn([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "cleaned up" in out
    assert list(tmp_path.iterdir()) == []


def test_cli_turns_usage_errors_into_one_sentence(tmp_path, python):
    run = subprocess.run([python, "-m", "biomeseason", "clean", str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 2 and "Traceback" not in run.stderr
