"""Fuzz targets for every parser: hypothesis runs them in CI, atheris for long runs."""
