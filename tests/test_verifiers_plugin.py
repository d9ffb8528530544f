"""A separately installed verifier package is found through its entry point, by the API and the CLI."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "rlvr-example-verifier"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    # setuptools writes build/ and *.egg-info next to the sources: install from a copy, keep the repo clean
    source = tmp_path_factory.mktemp("src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True,
    )
    return {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{REPO}"}


def test_load_finds_the_installed_plugin(plugin_env):
    code = (
        "import verifiers\n"
        "assert 'exact_line' in verifiers.available(), verifiers.available()\n"
        "v = verifiers.load('exact_line', ignore_case=True)\n"
        "print(v.verify(verifiers.Sample(completion='work\\nParis', reference='paris')).reward)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=plugin_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.0"


def test_rlvr_verify_runs_the_plugin(plugin_env, tmp_path):
    rows = [{"completion": "so\nParis", "reference": "Paris", "id": 1},
            {"completion": "Lyon", "reference": "Paris", "id": 2}]
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run(
        [sys.executable, "-m", "rlvr", "verify", "exact_line", "--input", str(src), "--output", str(dst),
         "--workers", "1"],
        env=plugin_env, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr
    scored = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [(r["id"], r["reward"], r["last_line"]) for r in scored] == [(1, 1.0, "Paris"), (2, 0.0, "Lyon")]
