"""The files every package carries agree with pyproject.toml and with each other."""
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")        # Python 3.11+
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_file_is_the_declared_mit_licence():
    text = (ROOT / "LICENSE").read_text()
    assert PROJECT["license"] == {"text": "MIT"} and text.startswith("MIT License\n")
    assert "ferlab contributors" in text and "WITHOUT WARRANTY OF ANY KIND" in text


def test_citation_file_names_this_version_and_the_five_papers():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["version"] == PROJECT["version"] and cff["license"] == "MIT"
    citing = (ROOT / "docs" / "citing.md").read_text()
    refs = cff["references"]
    assert [r["year"] for r in refs] == [2022, 2021, 2021, 2023, 2023]      # EAC, RUL, DMUE, LA-Net, LDLVA
    for ref in refs:
        title = re.sub(r"\s+", " ", ref["title"])
        authors = " and ".join(f"{a['family-names']}, {a['given-names']}" for a in ref["authors"])
        # the same paper, authors in the same order, in the BibTeX of docs/citing.md
        bib = re.sub(r"\s+", " ", citing.replace("{LA-Net}", "LA-Net"))
        assert f"title = {{{title}}}" in bib.replace("title     =", "title =") and authors in bib, title
    assert f"version = {{{PROJECT['version']}}}" in citing
