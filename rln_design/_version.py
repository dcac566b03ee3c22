"""Single source of the package version (read by setup.cfg and stored in every artifact)."""

__version__ = "0.1.0"
