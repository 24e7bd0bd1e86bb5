"""Turn a low-level decoder exception into a short human-readable reason."""

from __future__ import annotations


def describe_exception(exc: BaseException) -> str:
    """'TypeName: message' (or just the type name) for use inside an ImageReadError reason."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
