"""The ``embedkit`` root app: commands, ``--version``, and the process-level error boundary."""

from __future__ import annotations

import errno
import os
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

import embedkit

from . import check as check_command
from . import env as env_command
from . import eval as eval_command
from . import inspect as inspect_command
from . import loss as loss_command
from . import mine as mine_command
from .entry import EXIT_SIGINT, install_terminating_handlers
from .errors import (
    EXIT_OK,
    EXIT_SIGPIPE,
    EXIT_USAGE,
    ClickException,
    NoArgsIsHelpError,
)
from .streams import degrade_to_ascii

app = typer.Typer(
    name="embedkit",
    help="Ask your embeddings a question: contrastive-learning losses, hard-negative mining, CI checks.",
    epilog="Examples:\n  embedkit loss --kind contrastive --margin 1.0 emb.npy\n  embedkit check emb.npy -r 'nan_rows==0'\n"
           "  embedkit mine emb.npy -s hard -o hard.csv\n  embedkit env --json",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"embedkit {embedkit.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."),
    ] = None,
) -> None:
    """embedkit: contrastive losses, hard-negative mining and CI gates on exported embeddings."""


app.command(name="loss", epilog=loss_command.EPILOG, no_args_is_help=False)(loss_command.loss)
app.command(name="eval", epilog=eval_command.EPILOG, no_args_is_help=False)(eval_command.eval_)
app.command(name="check", epilog=check_command.EPILOG, no_args_is_help=False)(check_command.check)
app.command(name="inspect", epilog=inspect_command.EPILOG, no_args_is_help=False)(inspect_command.inspect)
app.command(name="mine", epilog=mine_command.EPILOG, no_args_is_help=False)(mine_command.mine)
app.command(name="env", epilog=env_command.EPILOG, no_args_is_help=False)(env_command.env)


def _pipe_closed(self: Console) -> None:
    # Rich's default ends the process with exit 1 (our "check failed" code); let the error
    # reach `run` instead, which ends quietly with 141. Patched on the class because Typer's
    # help makes its own consoles.
    self.quiet = True
    raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


Console.on_broken_pipe = _pipe_closed  # type: ignore[method-assign]


def _discard_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's last flush of what is still buffered
    cannot fail a second time (and print 'Exception ignored ...')."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _stdout_failed(exc: OSError) -> int:
    """Exit code for an error writing our stdout: quiet 141 for a closed pipe (the reader,
    e.g. ``| head``, has what it wanted), else ``error: ...`` and 2."""
    _discard_stdout()
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        return EXIT_SIGPIPE
    print(f"error: cannot write to stdout: {exc.strerror or exc}", file=sys.stderr, flush=True)
    return EXIT_USAGE


def run(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the command, flush stdout; return the exit code.

    Click's own main loop is bypassed on purpose: it turns a closed stdout into exit 1
    (the code of a failed check) and Ctrl-C into a bare 130.
    """
    degrade_to_ascii()
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        try:
            with command.make_context("embedkit", args) as ctx:
                command.invoke(ctx)
        finally:
            sys.stdout.flush()
    except typer.Exit as exc:
        code = exc.exit_code
        if code == EXIT_SIGINT:
            print("error: interrupted", file=sys.stderr, flush=True)
        return code
    except NoArgsIsHelpError:
        # The help is on stdout already; say what is missing instead of an empty error line.
        print("error: no command given; pick one of the commands above (embedkit COMMAND --help)",
              file=sys.stderr, flush=True)
        return EXIT_USAGE
    except ClickException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)  # type: ignore[attr-defined]
        message = " ".join(str(message).replace("Value error, ", "").split()) or "invalid command line"
        print(f"error: {message}", file=sys.stderr, flush=True)
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except (typer.Abort, KeyboardInterrupt):
        print("error: interrupted", file=sys.stderr, flush=True)
        return EXIT_SIGINT
    except OSError as exc:
        # Only writes to stdout get here: commands turn every other OSError into `error:` lines.
        return _stdout_failed(exc)
    return EXIT_OK


def main(argv: list[str] | None = None) -> None:
    """Console-script body: one-line usage errors, 130 on Ctrl-C, 128 + N on SIGTERM/SIGHUP/
    SIGQUIT, 141 on a closed stdout pipe, 2 when stdout cannot be written."""
    install_terminating_handlers()
    code = run(argv)
    try:
        sys.stdout.flush()
    except OSError as exc:
        code = _stdout_failed(exc)
    sys.exit(code)


if __name__ == "__main__":
    main()
