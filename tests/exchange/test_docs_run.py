"""The code blocks of README.md and docs/*.md marked runnable run as written, and print what they say.

A block is marked by an HTML comment on the line before it (invisible on the rendered page):

* ``<!-- test: python -->``: a Python script, run offline;
* ``<!-- test: exchange -->``: shell (curl, jq) against a running exchange; a file's blocks run in order
  as one script, with ``X=http://127.0.0.1:8000`` and ``ADMIN=adsk_adm_...`` pointed at a test server;
* ``<!-- test: python-exchange -->``: a Python script against a running exchange (same substitution).

The walkthroughs run on a plain server and on a ``--demo`` server (market and simulated traffic) and
must print the same answers on both, and those answers must be the ones the block's comments show.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ADMIN_KEY

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"<!-- test: ([a-z-]+) -->\s*\n```(\w+)\n(.*?)\n```", re.S)
KINDS = {"python", "exchange", "python-exchange"}
BIN = str(Path(sys.executable).parent)


def blocks(kind: str) -> list[tuple[str, str]]:
    out = []
    for path in DOCS:
        for m in MARK.finditer(path.read_text(encoding="utf-8")):
            assert m.group(1) in KINDS, f"{path.name}: unknown marker {m.group(1)!r}"
            if m.group(1) == kind:
                out.append((path.name, m.group(3)))
    return out


def _env():
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def _point(code: str, base: str) -> str:
    code = code.replace("X=http://127.0.0.1:8000", f"X={base}").replace("ADMIN=adsk_adm_...", f"ADMIN={ADMIN_KEY}")
    code = code.replace('"http://127.0.0.1:8000", "adsk_adm_..."', f'"{base}", "{ADMIN_KEY}"')
    return code.replace(".venv/bin/", BIN + "/")


def _comments(code: str) -> str:
    return "\n".join(line.split("#", 1)[1].strip() for line in code.splitlines() if "#" in line)


def test_every_marker_is_known_and_the_readme_has_runnable_blocks():
    assert blocks("python") and blocks("exchange") and blocks("python-exchange")


@pytest.mark.parametrize("where,code", blocks("python"), ids=lambda v: v if len(v) < 30 else None)
def test_python_blocks_run(where, code, tmp_path):
    script = tmp_path / "block.py"
    script.write_text(code)
    r = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, (where, r.stderr[-3000:])


def _run_shell(base: str, tmp: Path) -> dict[str, str]:
    """Each file's shell blocks, in order, as one script."""
    outputs = {}
    files: dict[str, list[str]] = {}
    for where, code in blocks("exchange"):
        files.setdefault(where, []).append(code)
    for where, codes in files.items():
        script = "set -euo pipefail\n" + "\n".join(_point(c, base) for c in codes)
        r = subprocess.run(["bash", "-c", script], cwd=tmp, env=_env(), capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (where, r.stdout[-2000:], r.stderr[-2000:])
        outputs[where] = r.stdout
    return outputs


def _assert_shown(outputs: dict[str, str]) -> None:
    every = "\n".join(_comments(code) for _, code in blocks("exchange") + blocks("python-exchange"))
    for where, out in outputs.items():
        assert out.strip(), where
        for line in out.strip().splitlines():
            assert line.strip() in every, (where, line, "not among the answers the block's comments show")


def test_walkthroughs_answer_the_same_on_a_plain_and_a_demo_server(server_factory, tmp_path):
    plain = server_factory("sqlite", {"ADSPACE_PRELOAD_MODEL": "1"})
    demo = server_factory("sqlite", {"ADSPACE_PRELOAD_MODEL": "1"}, args=("--demo", "--demo-auctions", "60"))
    (tmp_path / "plain").mkdir()
    (tmp_path / "demo").mkdir()
    a = _run_shell(plain.base, tmp_path / "plain")
    assert a == _run_shell(demo.base, tmp_path / "demo")
    _assert_shown(a)


def test_python_walkthroughs_print_what_they_say(server_factory, tmp_path):
    for i, (where, code) in enumerate(blocks("python-exchange")):
        srv = server_factory("sqlite", {"ADSPACE_PRELOAD_MODEL": "1"})  # a reader runs one walkthrough
        path = tmp_path / f"walk{i}.py"
        path.write_text(_point(code, srv.base))
        r = subprocess.run(
            [sys.executable, str(path)], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0, (where, r.stderr[-3000:])
        _assert_shown({where: r.stdout})
