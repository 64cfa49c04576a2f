"""The project's own files agree with each other."""

import re
import tomllib
from pathlib import Path

import yaml

from deitlab._project import REPO_SLUG, REPO_URL

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_mirrors_pyproject():
    project = _pyproject()["project"]
    declared = list(project["dependencies"])
    for items in project["optional-dependencies"].values():
        declared += [item for item in items if not item.startswith("deitlab[")]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    mirrored = {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    for requirement in declared:
        name = _name(requirement)
        if name in {"torch", "torchvision"}:
            continue
        assert mirrored.get(name) == requirement.replace(" ", ""), f"{requirement} differs in environment.yml"
    extra_names = set(mirrored) - {_name(r) for r in declared} - {"torch", "torchvision"}
    assert not extra_names, f"environment.yml lists packages pyproject does not: {extra_names}"


def test_dependencies_have_lower_bounds_not_pins():
    project = _pyproject()["project"]
    for requirement in project["dependencies"]:
        assert ">=" in requirement and "==" not in requirement, requirement


def test_readme_shows_the_two_commands_and_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert REPO_SLUG in readme
    assert _pyproject()["project"]["urls"]["Repository"] == REPO_URL


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for notebook in (ROOT / "notebooks").glob("[0-9]*.ipynb"):
        assert notebook.name in readme, f"README does not list {notebook.name}"
