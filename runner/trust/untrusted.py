"""Text that edgeasr did not write, shown safely: the one home of every printer's cleaning.

Hypotheses, references, utterance ids, an image's error strings and labels, file and folder names come from
images and datasets, that is from strangers. Printed as they are, ``ESC ]0;...BEL`` retitles the terminal,
``ESC [2J`` clears it, ``ESC [31m`` colours what follows, U+202E turns the rest of a line around ("exe.txt"
reads "txt.exe"), and rich takes ``[link=...]`` for a live link and ``[/]`` for an error. So every printer
shows such text through this module, in every form:

- ``visible``: control characters (C0, DEL, C1), Unicode format characters (the bidirectional controls
  U+202A-202E and U+2066-2069, the marks U+200E, U+200F and U+061C, zero-width and invisible characters,
  the byte-order mark), line and paragraph separators and lone surrogates are written out, as ``\\x1b``,
  ``\\n``, ``\\t`` or ``<U+202E>``. Kept: letters and spaces of every script, and the joiners U+200C and
  U+200D, which Persian, Indic scripts and emoji need and which move nothing.
- ``line``: a rich ``Text`` for the terminal, built from our words and such values, never parsed as markup;
  ``printer``, a console's print for ``log=`` callbacks (``say``, plain ``print``'s); ``PlainColumn``, a progress view's text column.
- ``markdown``: ``visible``, then a backslash before each character Markdown would act on (links, images,
  HTML, entities, emphasis, code, table pipes).
- ``csv_text``: CSV whose text cells are ``visible`` and never a spreadsheet formula.
- ``html``: ``visible`` (newlines kept: HTML shows them as spaces), then HTML-escaped.
- ``figure``: ``visible`` (newlines kept), for figures' text.

JSON is written raw: its encoder escapes control characters itself (``\\u001b``), and a program reading it gets
the text exactly as the image or dataset gave it.
"""

from __future__ import annotations

import csv
import html as _html
import io
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Callable, Union

from rich.console import Console
from rich.progress import Task, TextColumn
from rich.text import Text

#: Unicode categories written out: control, format, surrogate, line and paragraph separators.
SHOWN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Format characters kept as they are: the zero-width non-joiner and joiner (Persian, Indic scripts, emoji).
KEPT = frozenset("\u200c\u200d")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: What a spreadsheet takes for the start of a formula (tab and carriage return are written out already).
FORMULA_START = ("=", "+", "-", "@")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~&])")


def _written_out(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"<U+{code:04X}>"


def visible(value: object, *, lines: bool = False) -> str:
    """``value`` as text with every control, format and separator character written out (``\\x1b``,
    ``<U+202E>``); ``lines``: newlines stay newlines (a message of several lines that we composed)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case, in C
        return text
    return "".join(_written_out(ch) if (not ch.isprintable() and ch not in KEPT and not (lines and ch == "\n")
                                        and unicodedata.category(ch) in SHOWN_CATEGORIES) else ch
                   for ch in text)


Part = Union[object, "tuple[object, str]"]


def line(*parts: Part, lines: bool = False) -> Text:
    """One rich Text from ``parts``: each a value, or (value, style); every value is shown ``visible`` and
    none is ever read as markup. ``lines``: keep newlines (see ``visible``)."""
    text = Text()
    for part in parts:
        value, style = part if isinstance(part, tuple) else (part, "")
        text.append(visible(value, lines=lines), style=style or None)
    return text


def say(text: object) -> None:
    """``print`` of a line that quotes what we did not write, ``visible``: the default ``log`` of the library
    functions that name hub repositories, their files and datasets."""
    print(visible(text))


def printer(console: Console) -> Callable[[object], None]:
    """``console.print`` for a line that quotes what we did not write (a ``log=`` callback's): shown
    ``visible``, never markup."""
    return lambda text: console.print(line(text))


class PlainColumn(TextColumn):
    """A progress column whose text (a task's description or field: model and dataset names, host names) is
    shown ``visible`` and never read as markup, however it was set."""

    def __init__(self, text_format: str, **kwargs) -> None:
        super().__init__(text_format, markup=False, **kwargs)

    def render(self, task: Task) -> Text:
        return line((self.text_format.format(task=task), self.style))


def markdown(value: object) -> str:
    """``value`` for a Markdown document: ``visible``, and every character Markdown would act on escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", visible(value))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cell(value: object) -> object:
    """A text cell made ``visible``, with a leading apostrophe where a spreadsheet would take it for a formula
    (it starts with = + - @ and is not a number: "-0.5" stays a number); other cells as they are."""
    if not isinstance(value, str):
        return value
    text = visible(value)
    return "'" + text if text.startswith(FORMULA_START) and not _is_number(text) else text


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """Rows as CSV (one line each), every cell through ``csv_cell``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows([csv_cell(c) for c in row] for row in rows)
    return buf.getvalue()


def figure(value: object) -> str:
    """``value`` for a figure's text (matplotlib, whose style reads no mathtext): ``visible``, newlines kept. A
    font has no glyph for a control character, and matplotlib's warning about the missing glyph printed the
    character itself on the terminal."""
    return visible(value, lines=True)


def html(value: object) -> str:
    """``value`` for an HTML page: ``visible`` (a newline is only white space there), then escaped (quotes too,
    for attributes)."""
    return _html.escape(visible(value, lines=True))
