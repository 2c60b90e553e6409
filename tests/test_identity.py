"""Identity without the URL, the heartbeat setting, the app shell on every page, uploads bounded per session
(AppTest and unit tests; the browser side, cookies and two browsers, is tests/browser/test_safe_server.py)."""

import ast
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ui import session
from ui.navigation import PAGES

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


def test_a_session_query_parameter_is_ignored_and_nothing_is_put_in_the_url(monkeypatch, checkpoint_dir):
    import ui.catalog

    monkeypatch.setattr(ui.catalog, "CHECKPOINT_DIR", checkpoint_dir)
    victim = "0123456789abcdef" * 2
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["session"] = victim
    at.run()
    assert not at.exception, at.exception
    owner = at.session_state["session_id"]
    assert owner != victim and len(owner) == 32
    assert dict(at.query_params).get("session") in (None, victim, [victim])  # never rewritten to the owner id
    assert owner not in str(dict(at.query_params))
    at.run()
    assert at.session_state["session_id"] == owner  # stable within the session


def test_owner_ids_come_from_the_secret_and_never_equal_it():
    a, b = "a" * 64, "b" * 64
    assert session.owner_of(a) == session.owner_of(a) != session.owner_of(b)
    assert a not in session.owner_of(a) and len(session.owner_of(a)) == 32
    assert session._valid_secret(a) and not session._valid_secret("a" * 63) and not session._valid_secret("Z" * 64)
    assert not session._valid_secret(None) and not session._valid_secret("<script>" + "a" * 56)


@pytest.mark.parametrize("value, expected", [(None, 180.0), ("45", 45.0), ("3600.5", 3600.5)])
def test_heartbeat_timeout_is_a_setting(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(session.HEARTBEAT_TIMEOUT_ENV, raising=False)
    else:
        monkeypatch.setenv(session.HEARTBEAT_TIMEOUT_ENV, value)
    assert session.heartbeat_timeout() == expected


@pytest.mark.parametrize("value", ["soon", "5", "inf", "nan", "1e9"])
def test_a_bad_heartbeat_timeout_is_refused_with_one_line(monkeypatch, value):
    monkeypatch.setenv(session.HEARTBEAT_TIMEOUT_ENV, value)
    with pytest.raises(ValueError, match=r"RDL_HEARTBEAT_TIMEOUT=.* is not allowed; expected a finite number in \[30"):
        session.heartbeat_timeout()


@pytest.mark.parametrize("page", [page.file for page in PAGES], ids=lambda f: Path(f).stem)
def test_every_page_asks_for_the_app_shell_before_drawing(page):
    """A deep link on a fresh server runs the page file alone until require_app_shell() reruns through app.py
    (browser test: test_deep_link_on_a_fresh_server_runs_the_app_shell)."""
    tree = ast.parse((ROOT / page).read_text())
    statements = [node for node in tree.body if not isinstance(node, (ast.Import, ast.ImportFrom))]
    first_call = next(node for node in statements if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call))
    assert ast.unparse(first_call) == "require_app_shell()", f"{page}: first call is {ast.unparse(first_call)}"


# ------------------------------------------------------------------------------------- uploads per session
def test_uploads_are_bounded_per_session_and_kept_only_in_its_state(monkeypatch, checkpoint_dir, tmp_path):
    from helpers import MODELS, save_tiny

    from ui import catalog

    state = {}  # this session's st.session_state
    monkeypatch.setattr(catalog.st, "session_state", state)
    files = []
    for seed in range(catalog.MAX_UPLOADS + 1):
        path = tmp_path / f"m{seed}.safetensors"
        save_tiny(path, *MODELS["moons_eps"], seed=seed)
        files.append(path.read_bytes())
    keys = [catalog.add_uploaded(f"m{i}.safetensors", data) for i, data in enumerate(files[:-1])]
    assert len(set(keys)) == catalog.MAX_UPLOADS
    assert catalog.add_uploaded("again.safetensors", files[0]) == keys[0]  # the same file is not held twice
    with pytest.raises(ValueError, match=r"already holds 4 uploaded models .* the limit is 4 models"):
        catalog.add_uploaded("one-more.safetensors", files[-1])
    assert all(not isinstance(value, (bytes, bytearray)) for entry in state["uploaded_models"].values()
               for value in entry.values())  # the model is kept, not the file's bytes
    catalog.remove_uploads()
    assert state["uploaded_models"] == {}
    monkeypatch.setattr(catalog, "MAX_UPLOAD_SESSION_BYTES", 2 * len(files[0]) - 1)
    catalog.add_uploaded("a.safetensors", files[0])
    with pytest.raises(ValueError, match="remove uploads first"):
        catalog.add_uploaded("b.safetensors", files[1])


def test_an_uploaded_file_name_becomes_a_plain_label(monkeypatch, tmp_path):
    from helpers import MODELS, save_tiny

    from ui import catalog

    monkeypatch.setattr(catalog.st, "session_state", {})
    path = tmp_path / "m.safetensors"
    save_tiny(path, *MODELS["moons_eps"], seed=0)
    key = catalog.add_uploaded("![x](http://e.invalid/i.png)**m**.safetensors", path.read_bytes())
    assert catalog.st.session_state["uploaded_models"][key]["label"] == "x--http---e.invalid-i.png---m--.safetensors (uploaded)"
