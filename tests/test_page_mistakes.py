"""AppTests of the Common mistakes page (pages/mistakes.py), standalone."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "mistakes.py")


def test_every_mistake_has_its_numbers():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    wrong = " ".join(e.value for e in at.error)
    right = " ".join(s.value for s in at.success)
    assert "0.45 at t = 301" in wrong and "60.4 at t = 901" in wrong
    assert "ᾱ_500 = 0.703" in wrong and "ᾱ_500 = 0.494" in right
    assert "ᾱ_T = 0.219" in right
    assert "0.600 at t = 2" in right
    assert "DDIM with η = 0" in right and "E[x₀|x_t]" in right
    assert len(at.error) == len(at.success) == 6
    assert len(at.expander) == 6
