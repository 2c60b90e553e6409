"""bench/page_load.py runs end to end on two light pages and reports times and no errors."""

from bench import page_load


def test_page_load_measures_pages_without_errors():
    document = page_load.main(["--pages", "pages/home.py", "pages/posterior.py", "--no-write"])
    assert set(document["pages"]) == {"pages/home.py", "pages/posterior.py"}
    for result in document["pages"].values():
        assert result["first"] > 0 and result["rerun"] > 0 and result["problems"] == []
    assert document["hardware"]["cpu_cores"] >= 1
