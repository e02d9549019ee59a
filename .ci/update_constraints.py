"""Write constraints.txt: the installed versions of ningbo-sd[test]'s dependency closure.

Run after upgrading a dependency (``pip install -U X`` then ``python .ci/update_constraints.py``)
and commit the file with the code that needed the upgrade; CI installs with it, so an
upstream release cannot break the build with no change here.
"""

import re
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement


def closure(name: str, extras: tuple[str, ...] = (), seen: dict | None = None) -> dict:
    """Installed versions of ``name`` and everything it requires (with ``extras``)."""
    seen = {} if seen is None else seen
    key = re.sub(r"[-_.]+", "-", name).lower()
    try:
        dist = distribution(name)
    except PackageNotFoundError:
        return seen
    if key in seen and not extras:
        return seen
    seen[key] = dist.version
    for text in dist.requires or []:
        requirement = Requirement(text)
        environment = dict(default_environment())
        wanted = False
        for extra in ("", *extras):
            environment["extra"] = extra
            if requirement.marker is None or requirement.marker.evaluate(environment):
                wanted = True
        if wanted:
            closure(requirement.name, tuple(requirement.extras), seen)
    return seen


if __name__ == "__main__":
    versions = closure("ningbo-sd", ("test",))
    versions.pop("ningbo-sd", None)
    header = (
        "# Versions CI tests against (`make test` installs with -c constraints.txt).\n"
        "# Regenerate after an upgrade: python .ci/update_constraints.py\n"
    )
    body = "".join(f"{name}=={version}\n" for name, version in sorted(versions.items()))
    Path(__file__).resolve().parents[1].joinpath("constraints.txt").write_text(header + body)
