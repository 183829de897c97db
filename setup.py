"""Guard the source layout; all metadata and package discovery are in pyproject.toml.

``aligneai/core`` and ``aligneai/transports`` are symbolic links to the top-level folders
``core/`` and ``transports/``, so that the source tree imports, type-checks and installs as it
stands. A checkout made without symbolic links (Windows with ``core.symlinks=false``) would
silently build a wheel without them: refuse with the command that fixes it.
"""

from pathlib import Path

from setuptools import setup

_HERE = Path(__file__).resolve().parent
for _name in ("core", "transports"):
    if not (_HERE / "aligneai" / _name / "__init__.py").is_file():
        raise SystemExit(
            f"setup.py: aligneai/{_name} must be a symbolic link to ../{_name}. Clone with "
            "symbolic links enabled (git config --global core.symlinks true; on Windows also "
            "Developer Mode), or run: git checkout -- aligneai/core aligneai/transports"
        )

setup()
