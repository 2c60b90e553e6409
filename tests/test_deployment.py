"""Deployment files agree with each other and with Streamlit 1.67 (no server, no browser)."""

import re
import shlex
import tomllib
from pathlib import Path

from streamlit import config

REPO_ROOT = Path(__file__).resolve().parents[1]


def _flatten(table: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _readme_front_matter() -> dict:
    text = (REPO_ROOT / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.DOTALL)
    assert match, "README.md must start with the Space's YAML front matter between --- lines"
    return dict(line.split(": ", 1) for line in match.group(1).splitlines())


def _dockerfile_cmd() -> list[str]:
    text = (REPO_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    cmd_lines = [line for line in text.splitlines() if line.startswith("CMD ")]
    assert len(cmd_lines) == 1
    return shlex.split(cmd_lines[0][4:].strip().strip("[]").replace(",", " "))


def test_every_streamlit_setting_is_a_current_option():
    settings = _flatten(tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text()))
    options = config.get_config_options()
    unknown = sorted(set(settings) - set(options))
    assert not unknown, f"not Streamlit options: {unknown}"
    deprecated = sorted(key for key in settings if options[key].deprecated)
    assert not deprecated, f"deprecated Streamlit options: {deprecated}"


def test_space_port_matches_dockerfile():
    front = _readme_front_matter()
    assert front["sdk"] == "docker"
    port = front["app_port"]
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE {port}$", dockerfile, re.MULTILINE)
    cmd = _dockerfile_cmd()
    assert cmd[:3] == ["streamlit", "run", "app.py"]
    assert cmd[cmd.index("--server.port") + 1] == port
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0"
    assert len(front["short_description"]) <= 60  # the Hub's limit


def test_space_runs_as_uid_1000():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"useradd .*--uid 1000 user", dockerfile)
    assert re.search(r"^USER user$", dockerfile, re.MULTILINE)
