"""Packaging glue that pyproject.toml cannot express: ship the top-level conf/ inside the package.

A regular install (`pip install .`) copies conf/ to meprop_cli/conf, where meprop_cli.paths finds it;
an editable install leaves it at the repository root, where meprop_cli.paths finds it too.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["meprop_cli", "meprop_cli.*"]) + ["meprop_cli.conf"],
    package_dir={"meprop_cli.conf": "conf"},
    # conf/ as meprop_cli/conf; kernels.c is compiled on first use (meprop_cli/ops/native.py).
    package_data={"meprop_cli.conf": ["*.yaml", "*/*.yaml", "*/*/*.yaml"], "meprop_cli.ops": ["kernels.c"]},
)
