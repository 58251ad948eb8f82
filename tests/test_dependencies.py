"""The locks: deploys and CI install pinned versions, within pyproject.toml's bounds."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ivr import PROJECT_ROOT

PYPROJECT = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pins(name: str) -> dict[str, str]:
    text = (PROJECT_ROOT / name).read_text(encoding="utf-8")
    # Every pin carries its files' hashes (pip then checks them all; an editable line cannot be
    # hashed, so the app itself is installed apart, by the scripts and bin/post_compile).
    assert not re.search(r"^-e ", text, flags=re.M), f"{name}: no editable line in a hashed lock"
    for block in re.split(r"\n(?=[A-Za-z0-9._-]+==)", text)[1:]:
        assert "--hash=sha256:" in block, f"{name}: {block.splitlines()[0]} has no hash"
    found = re.findall(r"^([A-Za-z0-9._-]+)==([^\s;]+)", text, flags=re.M)
    return {canonicalize_name(package): pinned for package, pinned in found}


def test_every_declared_dependency_is_pinned_within_its_bounds():
    runtime, test = pins("requirements.txt"), pins("requirements-test.txt")
    declared = [(runtime, d) for d in PYPROJECT["project"]["dependencies"]]
    declared += [(test, d) for d in PYPROJECT["project"]["optional-dependencies"]["test"]]
    for lock, line in declared:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is not pinned"
        assert requirement.specifier.contains(lock[name], prereleases=True), (name, lock[name])


def test_the_test_lock_pins_what_the_deploy_lock_pins():
    runtime, test = pins("requirements.txt"), pins("requirements-test.txt")
    assert {name: test.get(name) for name in runtime} == runtime


def test_known_advisories_are_below_the_lower_bounds():
    bounds = {
        canonicalize_name(Requirement(d).name): Requirement(d).specifier
        for d in PYPROJECT["project"]["dependencies"]
    }
    for name, vulnerable in [
        ("gunicorn", "22.0.0"),
        ("requests", "2.32.3"),
        ("flask", "3.1.2"),
        ("werkzeug", "3.1.5"),
        ("jinja2", "3.1.5"),
        ("tqdm", "4.66.2"),
    ]:
        assert not bounds[name].contains(vulnerable), name


def test_the_scripts_install_the_locks_and_this_run_uses_them():
    test_script = (PROJECT_ROOT / "scripts" / "test").read_text()
    run_script = (PROJECT_ROOT / "scripts" / "run").read_text()
    assert "--require-hashes -r requirements-test.txt" in test_script
    assert "--require-hashes -r requirements.txt" in run_script
    post_compile = (PROJECT_ROOT / "bin" / "post_compile").read_text()
    assert "--no-deps -e ." in post_compile and "--no-deps -e ." in test_script
    installed = {
        name: version(name) for name in pins("requirements-test.txt") if name not in ("colorama",)
    }  # Windows only
    assert installed == {
        name: pinned for name, pinned in pins("requirements-test.txt").items() if name in installed
    }
