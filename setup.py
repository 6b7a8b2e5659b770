"""Packaging beyond pyproject.toml: the top-level recipes/ and manifests/ folders ship inside the
wheel as ``m4_pipeline/recipes`` and ``m4_pipeline/manifests`` (see m4_pipeline/resources.py), so
an installed ``m4 demo`` and ``m4 audit`` find their recipes, templates and targets."""

from setuptools import find_packages, setup

DATA = {"m4_pipeline.recipes": "recipes", "m4_pipeline.manifests": "manifests"}

setup(
    packages=find_packages(include=["m4_pipeline", "m4_pipeline.*"]) + list(DATA),
    package_dir=DATA,
    package_data={"m4_pipeline.recipes": ["*.yaml", "*/*.yaml"], "m4_pipeline.manifests": ["*.yaml"]},
)
