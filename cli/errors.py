"""The one boundary where library errors become ``error: ...`` and exit code 2."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer

from embedkit.errors import EmbedkitError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGPIPE, EXIT_SIGTERM = 141, 143

# Typer vendors click; its exception base is reachable through the public BadParameter.
ClickException: type[Exception] = next(
    cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"
)
# Raised (with the help already printed) when `embedkit` runs without a command.
NoArgsIsHelpError: type[Exception] = getattr(
    sys.modules[typer.BadParameter.__module__], "NoArgsIsHelpError", type("NoArgsIsHelpError", (Exception,), {})
)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise."""
    first_line = " ".join(message.split())
    print(f"error: {first_line}", file=sys.stderr, flush=True)
    return typer.Exit(code)


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn :class:`EmbedkitError` (and unreadable-file ``OSError``) into exit 2."""
    try:
        yield
    except EmbedkitError as exc:
        raise fail(str(exc)) from None
    except BrokenPipeError:
        raise  # the reader of our stdout left: the top-level boundary ends quietly
    except OSError as exc:
        # A file system refusal (disk full, permissions) that the library did not word.
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        raise fail(f"{where}{exc.strerror or exc}") from None
    except MemoryError:
        raise fail("out of memory; process a subset, or lower --budget-mib where the command has it") from None
