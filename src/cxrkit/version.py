"""The package version (`cxrkit.__version__`), in a module of its own so that any module can
read it without importing the package root, which comes last in the import order."""

__version__ = "0.1.0"
