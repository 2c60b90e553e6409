"""AppTests of the Common mistakes page (pages/mistakes.py), standalone."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "mistakes.py")


def test_every_mistake_has_its_numbers():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert not at.error
    wrong = " ".join(m.value for m in at.markdown if m.value.startswith(":red[**✗ Wrong.**]"))
    right = " ".join(m.value for m in at.markdown if m.value.startswith(":green[**✓ Right.**]"))
    assert "0.45 at t = 301" in wrong and "60.4 at t = 901" in wrong
    assert "ᾱ_500 = 0.703" in wrong and "ᾱ_500 = 0.494" in right
    assert "ᾱ_T = 0.219" in right
    assert "0.600 at t = 2" in right
    assert "DDIM with η = 0" in right and "E[x₀|x_t]" in right
    assert wrong.count("✗ Wrong.") == right.count("✓ Right.") == 6
    assert len(at.expander) == 6
