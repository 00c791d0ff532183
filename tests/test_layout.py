"""Package boundaries: ``envs`` never imports torch; imports have no side effects."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_envs_does_not_import_torch():
    modules = _modules_after(
        "import envs, envs.graph, envs.episodes, envs.simulator, envs.nav.candidates, "
        "envs.metrics, envs.evaluate"
    )
    assert "torch" not in modules


def test_cli_help_does_not_import_torch():
    modules = _modules_after("import vln_agent.cli; vln_agent.cli.build_parser()")
    assert "torch" not in modules


def test_import_creates_no_files(tmp_path):
    before = set(tmp_path.iterdir())
    subprocess.run(
        [sys.executable, "-c", "import envs, vln_agent, vqa_ve, vln_agent.cli"],
        cwd=tmp_path,
        check=True,
    )
    assert set(tmp_path.iterdir()) == before
