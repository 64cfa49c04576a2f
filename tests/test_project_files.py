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


def _extra_requirements(project: dict, extra: str) -> list[str]:
    """The requirements of ``extra`` with the ``deitlab[...]`` self-references expanded."""
    found = []
    for item in project["optional-dependencies"][extra]:
        if item.startswith("deitlab["):
            for inner in item[len("deitlab[") : -1].split(","):
                found += _extra_requirements(project, inner.strip())
        else:
            found.append(item)
    return found


def test_lock_files_cover_every_declared_dependency():
    """A dependency added to pyproject without `make lock` would be missing from the classroom install."""
    project = _pyproject()["project"]
    torch_build = {"torch", "torchvision"}  # installed by the Makefile before the lock
    for lock, extra in (("learner.txt", "learner"), ("dev.txt", "all")):
        pinned = {
            _name(line) for line in (ROOT / "requirements" / lock).read_text().splitlines() if re.match(r"^\w", line)
        }
        declared = {_name(r) for r in project["dependencies"] + _extra_requirements(project, extra)}
        missing = declared - torch_build - pinned
        assert not missing, f"requirements/{lock} lacks {sorted(missing)}: run `make lock`"


def _version(text: str) -> tuple[int, ...]:
    """``"0.17.*"`` / ``"2.11"`` → ``(0, 17)`` / ``(2, 11)``: the numeric release parts."""
    return tuple(int(part) for part in text.split("+")[0].split(".") if part.isdigit())


def _lower_bounds() -> dict[str, tuple[int, ...]]:
    project = _pyproject()["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["deploy"]
    return {_name(r): _version(r.split(">=")[1]) for r in requirements if ">=" in r}


def _minimums() -> dict[str, str]:
    lines = (ROOT / "requirements" / "minimums.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines]
    return {_name(pin): pin.split("==")[1] for pin in pins if "==" in pin}


def test_minimums_file_pins_the_lower_bounds_of_torch_torchvision_and_torchao():
    bounds, pins = _lower_bounds(), _minimums()
    for name in ("torch", "torchvision", "torchao"):
        pinned = _version(pins[name])
        assert pinned[: len(bounds[name])] == bounds[name], f"requirements/minimums.txt: {name}=={pins[name]}"


def test_minimums_file_takes_the_torch_tied_releases_from_the_compat_table():
    from deitlab.compat import tied_requirements

    pins = _minimums()
    for tied in tied_requirements(pins["torch"]):
        name, version = tied.split("==")
        assert _version(pins[name])[: len(_version(version))] == _version(version), f"minimums.txt vs compat: {tied}"


def test_every_admitted_torch_gets_a_torchao_the_deploy_extra_admits():
    from deitlab.compat import TORCH_TIED

    bounds = _lower_bounds()
    for minor, pins in TORCH_TIED.items():
        torchao = next(pin for pin in pins if pin.startswith("torchao=="))
        if _version(minor) >= bounds["torch"]:
            assert _version(torchao.split("==")[1]) >= bounds["torchao"], f"torch {minor}: {torchao}"
