"""Standard streams that cannot encode Unicode: human output degrades to ASCII.

With ``PYTHONIOENCODING=ascii`` or ``cp1252`` (Windows consoles, some CI runners) a ``−``
or ``‖`` would raise ``UnicodeEncodeError``. :func:`degrade_to_ascii` installs an error
handler on stdout and stderr that spells such characters in ASCII (``−`` -> ``-``,
``‖a − p‖²`` -> ``||a - p||^2``, box drawing -> ``+-|``), and, for anything else, the
character's ASCII base (``é`` -> ``e``) or ``?``. JSON is ASCII already (escaped).
"""

from __future__ import annotations

import codecs
import sys
import unicodedata

HANDLER = "embedkit-ascii"

ASCII = {
    "−": "-", "–": "-", "—": "-", "×": "x", "·": "*", "‖": "||", "…": "...", "→": "->", "←": "<-",
    "≤": "<=", "≥": ">=", "≠": "!=", "≈": "~", "√": "sqrt", "∈": " in ", "Σ": "sum", "σ": "sigma",
    "τ": "tau", "α": "alpha", "λ": "lambda", "½": "1/2", "⁺": "+", "⁻": "-", "¹": "^1", "²": "^2",
    "³": "^3", "⁴": "^4", "⁵": "^5", "⁶": "^6", "⁷": "^7", "⁸": "^8", "⁹": "^9", "⁰": "^0",
    "₀": "0", "₁": "1", "₂": "2", "₃": "3", "▶": ">", "█": "#", "▏": "|", "•": "*", "✓": "ok",
    "✗": "x", "°": " deg", "‘": "'", "’": "'", "“": '"', "”": '"', "\u00a0": " ",
}
_BOX = {"─": "-", "━": "-", "│": "|", "┃": "|", "═": "=", "║": "|"}


def _spell(char: str) -> str:
    if char in ASCII:
        return ASCII[char]
    if char in _BOX:
        return _BOX[char]
    name = unicodedata.name(char, "")
    if name.startswith("BOX DRAWINGS"):
        return "+"
    base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return base or "?"


def _handler(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    return "".join(_spell(c) for c in text), error.end


def _can_encode(stream: object) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "−×‖²·τ─│█".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def degrade_to_ascii() -> None:
    """Make stdout and stderr spell what their encoding cannot hold (see the module doc)."""
    try:
        codecs.lookup_error(HANDLER)
    except LookupError:
        codecs.register_error(HANDLER, _handler)
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and not _can_encode(stream) and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors=HANDLER)
            except (ValueError, OSError):  # detached or closed: nothing to protect
                pass
