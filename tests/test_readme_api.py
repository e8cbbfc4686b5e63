"""The README's Python API example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_python_api_example_runs(plugin_manager, tmp_path, monkeypatch, capsys):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (Python API)", "exec"), namespace)
    assert namespace["maps"].shape == (4, 32, 32)
    assert namespace["rgb"].shape == (32, 32, 3)
    assert (tmp_path / "runs" / "api-demo" / "config.json").is_file()
    assert "torch.Size([8, 32, 32])" in capsys.readouterr().out
