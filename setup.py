"""Package list only (everything else is in pyproject.toml): every package found under csn_plugin/,
so new subpackages are included without editing a list, plus the three packages that live outside
it (mapped by pyproject's ``[tool.setuptools.package-dir]``)."""

from setuptools import find_packages, setup

MAPPED = ["csn_plugin.hooks", "csn_plugin.cli", "csn_plugin.models"]  # hooks/, cli/, models/

setup(packages=sorted(set(find_packages(include=["csn_plugin", "csn_plugin.*"])) | set(MAPPED)))
