"""Build shim: the metadata lives in pyproject.toml (PEP 621, setuptools)."""

from setuptools import setup

setup()
