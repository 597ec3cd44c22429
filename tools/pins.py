"""Print the pinned requirements from pyproject.toml, one per line, for pip: the chat's, and
those of the extras named as arguments (default: grade and dev, what `make setup` installs).

pyproject.toml is the one place versions are written.
"""

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def pinned_requirements(extras=("grade", "dev")) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return requirements


if __name__ == "__main__":
    extras = sys.argv[1:] or ("grade", "dev")
    sys.stdout.write("\n".join(pinned_requirements(extras)) + "\n")
