"""The console script ``embedkit``: as small an import window as possible before Ctrl-C is handled.

Everything heavy (typer, rich, numpy, the commands) is imported inside :func:`main`, so a
Ctrl-C while Python loads them ends with ``error: interrupted`` and exit 130, never a
traceback. When the command has finished, :func:`leave` ends the process without the
interpreter's teardown (see there).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

EXIT_SIGINT = 130


#: Signals handled like SIGTERM (SIGHUP: the terminal closed; SIGQUIT: Ctrl-\).
TERMINATING_SIGNALS = ("SIGTERM", "SIGHUP", "SIGQUIT")


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SystemExit unwinds through every finally: partial outputs are removed on the way out.
    # Exit 128 + signal number, the shell's convention (143 for SIGTERM).
    raise SystemExit(128 + signum)


def install_terminating_handlers() -> None:
    """End with 128 + N on SIGTERM, SIGHUP and SIGQUIT; a signal our parent ignores
    (``nohup`` ignores SIGHUP) stays ignored."""
    for name in TERMINATING_SIGNALS:
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
            signal.signal(number, _terminate)


def leave(code: int) -> None:
    """End the process with ``code`` once the command is done, skipping the interpreter's
    teardown when that is safe.

    The teardown of a process that has loaded numba's kernels, typer, rich and pydantic is
    pure C work (garbage collection over every module's objects, freeing them one by one):
    0.3-0.7 s measured after an all-pairs loss, for nothing a command needs. Everything a
    command leaves behind is final before this point: outputs were renamed into place,
    engines (threads, Dask clusters) and temporary folders were closed by their context
    managers. The ``atexit`` handlers still run (logging, multiprocessing, weakref
    finalizers of libraries), then stdout and stderr are flushed, then ``os._exit``. Falls
    back to the ordinary exit, teardown included, when another non-daemon thread is still
    running (the interpreter would wait for it) or when a standard stream cannot be
    flushed (the interpreter reports that its own way).
    """
    import atexit
    import os

    current = threading.current_thread()
    if any(t is not current and t.is_alive() and not t.daemon for t in threading.enumerate()):
        raise SystemExit(code)
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    """Import the app, then run it (see :func:`cli.main.main`), then :func:`leave`. SIGTERM,
    SIGHUP and SIGQUIT already end the process with 128 + N during the imports (not with a
    traceback)."""
    install_terminating_handlers()
    try:
        from .main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_SIGINT) from None
    try:
        run(argv)
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            raise  # a message for the interpreter to print: not ours, keep its handling
        code = exc.code or 0
    else:
        code = 0
    leave(code)


if __name__ == "__main__":
    main()
