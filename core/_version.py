"""The package version, kept in one place so that headers, metadata and ``__version__`` agree."""

__version__ = "0.1.0"
