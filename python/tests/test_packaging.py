"""The build requirements pinned in pyproject.toml match scripts/requirements.txt."""
from __future__ import annotations

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
tomllib = pytest.importorskip("tomllib")


def test_build_pins_match_the_project_requirements():
    pyproject = os.path.join(ROOT, "pyproject.toml")
    requirements = os.path.join(ROOT, "scripts", "requirements.txt")
    if not (os.path.exists(pyproject) and os.path.exists(requirements)):
        pytest.skip("not a source checkout")
    with open(pyproject, "rb") as f:
        build = tomllib.load(f)["build-system"]["requires"]
    with open(requirements) as f:
        pins = {m[1].lower().replace("_", "-"): m[2] for m in re.finditer(r"^([\w.-]+)==(\S+)", f.read(), re.M)}
    for requirement in build:
        name, _, version = requirement.partition("==")
        assert pins.get(name.lower().replace("_", "-")) == version, requirement
