"""The README's Python code blocks run as printed: each in a fresh interpreter, in a
folder holding `my_cast` (the tiny test cast, with the fused `lyra` the README adds),
the client blocks against a daemon on the README's address, 127.0.0.1:50051."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from server_harness import ServerThread, server_config

from npc_runtime.neeko.profile import load_profile
from npc_runtime.neeko.store import load_cast

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
ADDRESS = "127.0.0.1:50051"
BARD = Path(__file__).resolve().parents[1] / "npc_runtime" / "assets" / "village" / "bard.toml"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, trained_cast_dir):
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(trained_cast_dir, root / "my_cast")
    cast = load_cast(root / "my_cast")
    cast.fuse(load_profile(BARD))
    cast.save()
    return root


@pytest.fixture(scope="module")
def daemon(tmp_path_factory, trained_cast_dir, tiny_base):
    tmp = tmp_path_factory.mktemp("readme-daemon")
    config = server_config(trained_cast_dir, tmp, tiny_base, port=int(ADDRESS.split(":")[1]))
    running = ServerThread(config).start()
    yield running
    running.stop()


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_a_readme_block_runs_as_printed(number, folder, request):
    code = BLOCKS[number]
    if ADDRESS in code:
        request.getfixturevalue("daemon")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"block {number}:\n{code}\n{result.stderr[-3000:]}"
    assert result.stdout.strip(), f"block {number} printed nothing"
