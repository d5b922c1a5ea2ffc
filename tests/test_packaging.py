"""The built wheel carries everything an installed autoprune needs: every module, the shipped checkpoints, search
spaces and agent settings (`.ci/run` also installs it into a fresh virtual environment and runs a search)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_module_config_and_checkpoint(tmp_path: Path) -> None:
    source = tmp_path / "src"  # built from a copy, so the checkout gets no build/ or egg-info
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "autoprune", source / "autoprune", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("autoprune-*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "autoprune").rglob("*")
               if p.is_file() and p.suffix in (".py", ".yaml", ".pt") and "__pycache__" not in p.parts}
    assert {"autoprune/configs/search_spaces/default.yaml", "autoprune/configs/agents/ga.yaml",
            "autoprune/checkpoints/resnet20_fashion-mnist.pt"} <= shipped
    assert shipped <= packaged, sorted(shipped - packaged)


def test_the_top_level_config_folders_are_the_packaged_ones() -> None:
    """search_spaces/ and agents/ stay where the layout has them, as links into the package: one copy only."""
    for name in ("search_spaces", "agents"):
        assert (ROOT / name).resolve() == (ROOT / "autoprune" / "configs" / name).resolve()
