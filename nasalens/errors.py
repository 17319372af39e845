"""The one exception type nasalens raises for bad input, and how its messages quote user values.

Every message names the offending item (sample id, file:line, head) and says what to do.
docs/errors.md lists each message with its cause and fix. User values are quoted through
`quote`, so a megabyte-long id never makes a megabyte-long message.
"""

from __future__ import annotations

#: The most characters of one user value a message quotes.
QUOTE_LIMIT = 200
#: The longest message; a longer one keeps its start and its end (where the fix is).
MESSAGE_LIMIT = 2000


class NasalensError(ValueError):
    """Bad input to a nasalens function: the message names the item and the fix."""

    def __init__(self, message: object = "") -> None:
        text = str(message)
        if len(text) > MESSAGE_LIMIT:
            head, tail = MESSAGE_LIMIT * 2 // 3, MESSAGE_LIMIT // 3
            cut = len(text) - head - tail
            text = f"{text[:head]} [... {cut} characters ...] {text[-tail:]}"
        super().__init__(text)


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """Return ``text`` as is, or its first ``limit`` characters and how long it was.

    For values shown without quotes, such as paths at the start of ``file:line`` messages.
    """
    return text if len(text) <= limit else f"{text[: limit - 1]}... ({len(text)} characters)"


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """Return ``repr(value)``, shortened to about ``limit`` characters for an error message.

    Args:
        value: Any user value (a string, a number, a parsed JSON value).
        limit: The most characters of the repr to keep.

    Returns:
        The repr, or its first ``limit`` characters and how long the value was.

    Example:
        >>> quote("x" * 500, limit=10)
        "'xxxxxxxx... (500 characters)"
    """
    if isinstance(value, str):
        text, size = repr(value[: limit + 1]), len(value)
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"<an integer of about {value.bit_length() * 30103 // 100000 + 1} digits>"
    else:
        try:
            text = repr(value)
        except (ValueError, RecursionError):  # an integer past Python's 4,300-digit limit inside
            text = f"<a {type(value).__name__} too large to show>"
        size = len(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 1]}... ({size} characters)"
