"""environment.yml is a valid conda environment that installs the same kit as pyproject.toml.

conda cannot be installed here, so this checks what conda would read: the file's
structure, every spec's syntax, and that both files ask for the same packages with the
same version bounds (jupyter-stack-notes.md §7).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONDA_SPEC = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)\s*(?P<spec>[<>=!~][^\s#]*)?$")


def load_env() -> dict:
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def env_specs() -> dict[str, SpecifierSet]:
    specs: dict[str, SpecifierSet] = {}
    for dep in load_env()["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                req = Requirement(line)
                specs[canonicalize_name(req.name)] = req.specifier
            continue
        match = CONDA_SPEC.match(dep)
        assert match, f"environment.yml: {dep!r} is not a valid conda spec"
        specs[canonicalize_name(match["name"])] = SpecifierSet(match["spec"] or "")
    return specs


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pyproject_requirements() -> list[Requirement]:
    project = pyproject()["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += extra
    return [Requirement(line) for line in lines]


def test_environment_file_has_condas_shape():
    env = load_env()
    assert set(env) <= {"name", "channels", "dependencies", "variables", "prefix"}
    assert env["name"] and env["channels"] == ["conda-forge"]
    pip_blocks = [d for d in env["dependencies"] if isinstance(d, dict)]
    assert len(pip_blocks) == 1 and set(pip_blocks[0]) == {"pip"}
    assert "pip" in env["dependencies"], "a pip: block needs pip itself listed"


def test_both_files_ask_for_the_same_packages_and_bounds():
    env = env_specs()
    wanted = {canonicalize_name(r.name): r for r in pyproject_requirements()
              if r.marker is None or r.marker.evaluate({"python_version": "3.12"})}
    missing = sorted(set(wanted) - set(env))
    extra = sorted(set(env) - set(wanted) - {"python", "pip"})
    differ = sorted(n for n in set(wanted) & set(env) if wanted[n].specifier != env[n])
    assert (missing, extra, differ) == ([], [], []), (
        f"environment.yml lacks {missing}, has extra {extra}, disagrees on bounds for {differ}"
    )


def test_the_environments_python_satisfies_requires_python():
    requires = SpecifierSet(pyproject()["project"]["requires-python"])
    allowed = env_specs()["python"]
    for minor in range(8, 16):
        version = f"3.{minor}"
        if allowed.contains(version):
            assert requires.contains(version), f"environment.yml allows Python {version}; pyproject does not"
