"""Map the source folders onto the installed package; all other metadata is in pyproject.toml.

``aligneai/`` is installed as ``aligneai``, ``core/`` as ``aligneai.core`` and ``transports/`` as
``aligneai.transports``. pyproject.toml alone cannot combine such a mapping with automatic
discovery, so the subpackages of each folder are found here: a new subpackage (a folder with an
``__init__.py``) is packaged without editing any configuration.
"""

from setuptools import find_packages, setup

ROOTS = {
    "aligneai": "aligneai",
    "aligneai.core": "core",
    "aligneai.transports": "transports",
}


def _packages() -> list[str]:
    packages = []
    for name, folder in ROOTS.items():
        packages.append(name)
        packages.extend(f"{name}.{sub}" for sub in find_packages(folder))
    if len(set(packages)) != len(packages):  # e.g. a stray aligneai/core/ folder
        raise SystemExit(f"setup.py: two folders map onto one package: {sorted(packages)}")
    return packages


setup(packages=_packages(), package_dir=ROOTS)
