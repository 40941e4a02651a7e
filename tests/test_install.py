"""`pip install .` as a user does it: the command line works from the installed package, outside the repository."""
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TILE = ROOT / "data" / "bluemarble" / "Deciduous" / "Deciduous_europe-carpathian-0585-3002_Oct.png"


@pytest.mark.slow
def test_pip_install_into_a_new_venv_then_predict_a_real_tile(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies (torch is gigabytes) are reused from the test environment; the package itself is built
    # from the repository and installed as a user's `pip install .` installs it.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    build = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                            "--target", str(site), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    where = subprocess.run([str(python), "-c", "import biomeseason; print(biomeseason.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert where.startswith(str(site))                    # the installed copy, not the repository's
    run = subprocess.run([str(python), "-m", "biomeseason", "predict", str(TILE), "--model",
                          str(ROOT / "models" / "earth.pt"), "--workers", "0"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Deciduous_europe-carpathian-0585-3002_Oct.png" in run.stdout and "biome" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["venv"]   # nothing written where the user stands
