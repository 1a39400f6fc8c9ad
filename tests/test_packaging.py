"""What the package declares: its licence, the Pythons it runs on, and bounds where it leans
on another library's internals."""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def requirements() -> list[Requirement]:
    listed = PROJECT["dependencies"] + [r for extra in PROJECT["optional-dependencies"].values() for r in extra]
    return [Requirement(r) for r in listed]


def test_the_licence_file_the_metadata_and_the_notice_agree():
    assert PROJECT["license"] == "Apache-2.0"
    assert set(PROJECT["license-files"]) == {"LICENSE", "NOTICE"}
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    assert "Licensed under the Apache License 2.0" in (ROOT / "NOTICE").read_text()


def test_python_311_and_newer():
    supported = SpecifierSet(PROJECT["requires-python"])
    assert "3.10" not in supported and "3.11" in supported and "3.12" in supported
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in supported


def test_aiortc_is_bounded_above_everywhere():
    # vidstyle.apps.serve replaces a private attribute of aiortc's receiver.
    for requirement in requirements():
        if requirement.name == "aiortc":
            assert any(spec.operator == "<" for spec in requirement.specifier), str(requirement)
