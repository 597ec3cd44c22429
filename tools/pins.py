"""Print the pinned requirements from pyproject.toml, one per line, for pip.

`make setup` installs exactly these, so pyproject.toml is the one place versions are written.
"""

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def pinned_requirements(extras=("dev",)) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return requirements


if __name__ == "__main__":
    sys.stdout.write("\n".join(pinned_requirements()) + "\n")
