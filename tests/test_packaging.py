"""The wheel carries every module and config: build it, install it in a fresh venv, import all."""

import subprocess
import sys
import sysconfig
import zipfile

from conftest import REPO

MODULES = sorted(
    "reverie." + ".".join(path.relative_to(REPO).with_suffix("").parts).replace(".__init__", "")
    for root in ("agents", "envs", "launch") for path in (REPO / root).rglob("*.py"))


def test_wheel_installs_and_imports_every_module(tmp_path):
  dist = tmp_path / "dist"
  subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", dist,
                  REPO], check=True, capture_output=True)
  (wheel,) = dist.glob("reverie-*.whl")
  names = zipfile.ZipFile(wheel).namelist()
  assert "reverie/configs/dqn_cartpole.yaml" in names

  # A fresh venv that borrows the dependencies (not Reverie) from this environment.
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
  site = next(venv.glob("lib/python3.*/site-packages"))
  (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
  python = venv / "bin" / "python"
  subprocess.run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], check=True,
                 capture_output=True, cwd=tmp_path)

  imports = "; ".join(f"import {m}" for m in MODULES)
  check = (f"{imports}; import reverie.launch.cli as c; "
           "assert 'site-packages' in c.__file__, c.__file__; print(c.__file__)")
  result = subprocess.run([python, "-c", check], capture_output=True, text=True, cwd=tmp_path)
  assert result.returncode == 0, result.stderr[-2000:]
  assert str(REPO) not in result.stdout

  reverie = venv / "bin" / "reverie"
  result = subprocess.run([reverie, "config", "dqn_cartpole"], capture_output=True, text=True,
                          cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  assert "learner.batch_size" in result.stdout


def test_module_list_is_complete():
  assert "reverie.launch.cli" in MODULES and "reverie.agents.dqn.transitions" in MODULES
  packaged = {m.rsplit(".", 1)[0] for m in MODULES}
  pyproject = (REPO / "pyproject.toml").read_text()
  for package in packaged:
    assert f'"{package}"' in pyproject, f"{package} missing from pyproject packages"
