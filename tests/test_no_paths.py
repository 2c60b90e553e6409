"""Pages never show server file paths (issues 18.6 and 21.6): every page, run through app.py as a student opens it,
with the models in a folder outside the repository (as a server's $RDL_CHECKPOINT_DIR is) and the run store in
another, shows neither folder, nor the repository's, nor the virtualenv's, nor any absolute path to a file."""

import re
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import open_page

from ui.navigation import available_pages

ROOT = Path(__file__).resolve().parent.parent
# an absolute POSIX path to a file or folder: /x/y..., not preceded by a word, a dot or a URL's "//" or ":"
ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/\\])/(?:[\w.-]+/)+[\w.-]+")
SKIPPED = {"plotly_chart", "imgs", "image", "arrow_data_frame", "arrow_table", "html", "latex"}  # pixels, data, CSS


def shown_texts(node) -> list[str]:
    """The text of every element under an AppTest node (its protobuf as text), except figures, pictures and tables."""
    children = getattr(node, "children", None)
    if children is not None:
        return [text for child in children.values() for text in shown_texts(child)]
    if getattr(node, "type", None) in SKIPPED or not hasattr(node, "proto"):
        return []
    return [str(node.proto)]


def test_text_finder_sees_what_it_should():
    assert ABSOLUTE_PATH.search("checkpoints.load('/tmp/pytest-1/mnist_eps.safetensors')")
    assert ABSOLUTE_PATH.search("saved in /work/main/runs/jobs/abc")
    for harmless in ("checkpoints/mnist_eps.safetensors", "x/y", "1/A", "https://arxiv.org/abs/2006.11239",
                     "/denoise?denoise_t=304", "\\sqrt{1/\\bar\\alpha_t}", "σ²/β"):
        assert not ABSOLUTE_PATH.search(harmless), harmless


@pytest.mark.parametrize("page", [entry.file for entry in available_pages()])
def test_no_server_path_on_any_page(monkeypatch, checkpoint_dir, tmp_path, page):
    monkeypatch.setenv("RDL_RUNS_DIR", str(tmp_path / "runs"))
    at = open_page(monkeypatch, checkpoint_dir, page)
    texts = shown_texts(at._tree)
    assert texts, f"{page}: nothing read"
    text = "\n".join(texts)
    forbidden = {str(checkpoint_dir), str(ROOT), str(tmp_path), sys.prefix, tempfile.gettempdir() + "/", "/runs/",
                 str(Path.home()) + "/"}
    found = sorted(item for item in forbidden if item in text)
    assert not found, f"{page} shows {found}"
    paths = ABSOLUTE_PATH.findall(text)
    assert not paths, f"{page} shows absolute paths {paths[:5]}"
