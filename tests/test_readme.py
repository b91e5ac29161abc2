"""Every Python snippet in README.md runs, and the README's commands exist."""

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

README = (ROOT / "README.md").read_text()
SNIPPETS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_has_python_snippets():
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index):
    r = subprocess.run([sys.executable, "-c", SNIPPETS[index]], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_readme_commands_exist():
    for script in re.findall(r"^bash (scripts/\S+)", README, flags=re.M):
        assert (ROOT / script).is_file(), script
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_readme_cli_lines_parse():
    from plugin_host.cli import build_parser

    parser = build_parser()
    block = re.search(r"## Command line\n\n```sh\n(.*?)```", README, flags=re.S).group(1)
    for line in block.strip().splitlines():
        args = line.split("#")[0].split()[1:]
        parser.parse_args([a.strip("'") for a in args])
