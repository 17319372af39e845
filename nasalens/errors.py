"""The one exception type nasalens raises for bad input.

Every message names the offending item (sample id, file:line, head) and says what to do.
docs/errors.md lists each message with its cause and fix.
"""

from __future__ import annotations


class NasalensError(ValueError):
    """Bad input to a nasalens function: the message names the item and the fix."""
