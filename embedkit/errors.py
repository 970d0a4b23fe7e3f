"""The one error family the library raises for bad input or bad options.

The CLI turns every :class:`EmbedkitError` into one line ``error: ...`` on stderr and
exit code 2. Anything else escaping the library is a bug.
"""

from __future__ import annotations


class EmbedkitError(ValueError):
    """The tool could not do its job: unreadable or invalid input, or an invalid option."""


class InputError(EmbedkitError):
    """A file (or stdin) could not be read, or its content is not valid for the task."""


class OptionError(EmbedkitError):
    """An option value is out of range or inconsistent with the others."""
