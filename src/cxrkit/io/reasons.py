"""Turn a low-level decoder exception into a short human-readable reason."""

from __future__ import annotations

#: Never caught by the reader: the user or the interpreter asked to stop.
FATAL_EXCEPTIONS: tuple[type[BaseException], ...] = (KeyboardInterrupt, SystemExit, GeneratorExit)

_MAX_DETAIL = 300


def is_fatal(exc: BaseException) -> bool:
    """True for exceptions a decoder wrapper must re-raise (Ctrl-C, exit, generator close)."""
    return isinstance(exc, FATAL_EXCEPTIONS)


def describe_exception(exc: BaseException) -> str:
    """'TypeName: message' (or just the type name) for use inside an ImageReadError reason.

    Long messages (a Rust panic may quote a whole backtrace) are cut to one short line.
    """
    text = " ".join(str(exc).split())
    if len(text) > _MAX_DETAIL:
        text = text[: _MAX_DETAIL - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
