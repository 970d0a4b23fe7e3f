"""The console script ``embedkit``: as small an import window as possible before Ctrl-C is handled.

Everything heavy (typer, rich, numpy, the commands) is imported inside :func:`main`, so a
Ctrl-C while Python loads them ends with ``error: interrupted`` and exit 130, never a
traceback.
"""

from __future__ import annotations

import sys

EXIT_SIGINT = 130


def main(argv: list[str] | None = None) -> None:
    """Import the app, then run it (see :func:`cli.main.main`)."""
    try:
        from cli.main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_SIGINT) from None
    run(argv)


if __name__ == "__main__":
    main()
