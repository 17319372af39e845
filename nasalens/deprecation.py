"""Old names kept working for one release, each with a `DeprecationWarning` naming the new one.

The one place the API's renames live: `renamed_arguments` maps old keyword arguments to new
ones, `renamed` makes an old function name call the new function. docs/api.md lists every
rename (old name -> new name).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from nasalens.errors import NasalensError

F = TypeVar("F", bound=Callable[..., Any])


def warn(old: str, new: str) -> None:
    """Warn once per call site that ``old`` is deprecated in favour of ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in nasalens 0.3; use {new}",
        DeprecationWarning,
        stacklevel=3,
    )


def renamed_arguments(**old_to_new: str) -> Callable[[F], F]:
    """Let a function also take its arguments' old keyword names, with a warning.

    Example:
        >>> @renamed_arguments(n="top_n")
        ... def select(*, top_n: int = 30) -> int:
        ...     return top_n
    """

    def wrap(fn: F) -> F:
        name = fn.__qualname__.removesuffix(".__init__")

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise NasalensError(f"{name}: pass {new}= only ({old}= is its old name)")
                    warn(f"{name}({old}=...)", f"{new}=")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def keyword_only(name: str, position: int) -> Callable[[F], F]:
    """Let a function still take its keyword-only argument ``name`` at ``position``, warning."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            if len(args) > position:
                if name in kwargs or len(args) > position + 1:
                    raise NasalensError(f"{fn.__name__}: pass {name}= by keyword")
                warn(f"passing {name} to {fn.__name__} by position", f"{name}=")
                kwargs[name] = args[position]
                args = args[:position]
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def dropped_arguments(*names: str, why: str) -> Callable[[F], F]:
    """Let a function still take keyword arguments it no longer uses, with a warning."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for name in names:
                if name in kwargs:
                    kwargs.pop(name)
                    warnings.warn(
                        f"{fn.__name__}({name}=...) is deprecated and ignored: {why}",
                        DeprecationWarning,
                        stacklevel=2,
                    )
            return fn(*args, **kwargs)

        return call  # type: ignore[return-value]

    return wrap


def renamed(fn: F, old: str) -> F:
    """Return ``fn`` under its old name ``old``: calling it warns, then calls ``fn``."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        warn(old, fn.__name__)
        return fn(*args, **kwargs)

    call.__name__ = call.__qualname__ = old
    call.__doc__ = f"Deprecated name of `{fn.__module__}.{fn.__name__}`."
    return call  # type: ignore[return-value]
