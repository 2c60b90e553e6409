"""AppTests of the Common mistakes page (pages/mistakes.py), standalone."""

import re
from pathlib import Path

from helpers import check_link_and_reset, plain_scripts, presets
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "mistakes.py")


def claims(at) -> tuple[str, str]:
    wrong = " ".join(m.value for m in at.markdown if m.value.startswith(":red[**✗ Wrong.**]"))
    right = " ".join(m.value for m in at.markdown if m.value.startswith(":green[**✓ Right.**]"))
    return wrong, right


def test_every_mistake_has_its_numbers():
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    assert not at.error
    wrong, right = claims(at)
    assert "0.45 at $t = 301$" in wrong and "60.4 at $t = 901$" in wrong
    assert "$\\bar\\alpha_{500}$ = 0.703" in wrong and "$\\bar\\alpha_{500}$ = 0.494" in right
    assert "$\\bar\\alpha_T$ = 0.219" in right
    assert "0.600 at $t = 2$" in right
    assert "DDIM with $\\eta = 0$" in right and "$\\hat x_0 = \\mathbb E[x_0 \\mid x_t]$" in right
    assert wrong.count("✗ Wrong.") == right.count("✓ Right.") == 7
    assert len(at.expander) == 8  # section 7 shows the wrong and the right formula
    assert plain_scripts(at) == []


def test_a_link_shows_one_mistake_and_the_presets_say_what_it_shows():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.query_params["mistakes_show"] = "elbo"
    at.run()
    assert not at.exception and at.selectbox(key="mistakes_show").value == "elbo"
    wrong, right = claims(at)
    assert wrong.count("✗ Wrong.") == 1 and "0.600 at $t = 2$" in right
    small, large = (float(x) for x in re.findall(r"is ([0-9.e+-]+) at \$t = 2\$ and ([0-9.e+-]+) at", right)[0])
    assert 50 < small / large < 70  # preset 0 says "about 60×"
    at = check_link_and_reset(AppTest.from_file(PAGE, default_timeout=120).run(), "mistakes", {}, {}, ("mistakes_show", "7"))
    assert claims(at)[0].count("✗ Wrong.") == 7
    assert len(presets(at, "mistakes")) == 3
    at.button(key="mistakes_preset_1").click().run()  # deterministic sampling keeps about the data's variance
    spread = re.search(r"total variance ([0-9.]+) vs the data.s ([0-9]+\.[0-9]+)", claims(at)[1])
    assert 0.8 < float(spread[1]) / float(spread[2]) < 1.2
    at.button(key="mistakes_preset_2").click().run()  # what training matches: the average of the posteriors
    right = claims(at)[1]
    best, average = re.search(r"= ([0-9.-]+), the average of those means \(([0-9.-]+) over", right).groups()
    assert abs(float(best) - float(average)) < 0.01
