"""Short answers: normalization, matching a model's answer to gold aliases, answer kinds.

Owns how two short answers are compared (`normalize`, `numbers`, `matches`), how an answer is
classified (`answer_kind`), and how a plausible wrong number is made (`wrong_number`).
"""

from __future__ import annotations

import functools
import math
import random
import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from nasalens.errors import NasalensError, quote

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
# Number word -> (unit|teen|tens|hundred|scale, value).
_NUMBER_WORDS: dict[str, tuple[str, int]] = {
    **{w: ("unit", v) for w, v in _UNITS.items()},
    **{w: ("teen", v) for w, v in _TEENS.items()},
    **{w: ("tens", v) for w, v in _TENS.items()},
    "hundred": ("hundred", 100),
    **{w: ("scale", v) for w, v in _SCALES.items()},
}
_ARTICLES = frozenset({"a", "an", "the"})

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# A token is a number (a minus sign counts only when no word character precedes it) or a word.
_TOKEN = re.compile(r"(?:(?<!\w)-)?\d+(?:\.\d+)?|[^\W_]+")
_THOUSANDS_COMMA = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_GLUE = re.compile(r"['’`]|(?<!\d)\.(?=[^\W\d_])|(?<=\w)\.(?!\d)")


def _fold(text: str) -> str:
    """Casefold and strip accents (NFKD, combining marks dropped).

    Casefolding comes after the compatibility decomposition too, which can make capitals
    ("㏆" -> "C/kg"), so that folding folded text changes nothing.
    """
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _canonical(value: Decimal) -> str:
    """Write a number without exponent, trailing zeros or a negative zero."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@functools.lru_cache(maxsize=1 << 16)
def _tokens(text: str) -> tuple[str, ...]:
    """Split folded text into word and number tokens; articles dropped, number words joined."""
    text = _THOUSANDS_COMMA.sub("", _fold(text))
    text = _GLUE.sub("", text)  # "D.C." -> "dc", "don't" -> "dont"; keeps "3.5"
    words = [t for t in _TOKEN.findall(text) if t not in _ARTICLES]
    return tuple(_join_number_words(words))


def _digits_run(words: list[str], i: int) -> tuple[str, int]:
    """Read digits at ``words[i]`` and any scale words after them ("2 million")."""
    number = Decimal(words[i])
    i += 1
    while i < len(words) and words[i] in ("hundred", *_SCALES):
        number *= 100 if words[i] == "hundred" else _SCALES[words[i]]
        i += 1
    return _canonical(number), i


def _words_run(words: list[str], i: int) -> tuple[str, int]:
    """Read the longest grammatical run of number words from ``words[i]`` (a number word)."""
    total, current, last, top_scale = 0, 0, "", 10**15
    while i < len(words):
        entry = _NUMBER_WORDS.get(words[i])
        if entry is None:
            # "and" joins "one hundred and five", not "two and three"
            following = _NUMBER_WORDS.get(words[i + 1]) if i + 1 < len(words) else None
            if words[i] == "and" and last in ("hundred", "scale") and following:
                if following[0] in ("unit", "teen", "tens"):
                    i += 1
                    continue
            break
        kind, amount = entry
        if kind == "unit" and last in ("", "tens", "hundred", "scale"):
            if amount == 0 and last:
                break
            current += amount
        elif kind in ("teen", "tens") and last in ("", "hundred", "scale"):
            current += amount
        elif kind == "hundred" and last in ("", "unit", "teen") and current < 100:
            current = (current or 1) * 100
        elif kind == "scale" and last != "scale" and amount < top_scale:
            total += (current or 1) * amount
            current, top_scale = 0, amount
        else:
            break
        last = kind
        i += 1
        if kind == "unit" and amount == 0:  # "zero" stands alone
            break
    return str(total + current), i


def _join_number_words(words: list[str]) -> list[str]:
    """Replace runs of number words ("twenty one", "one hundred and five") by their digits.

    Digits followed by scale words ("2 million") are multiplied out as well. A run stops where the
    next word cannot continue it grammatically, so "one two" stays two numbers.
    """
    out: list[str] = []
    i = 0
    while i < len(words):
        if _NUMBER.fullmatch(words[i]):
            token, i = _digits_run(words, i)
        elif words[i] in _NUMBER_WORDS:
            token, i = _words_run(words, i)
        else:
            token, i = words[i], i + 1
        out.append(token)
    return out


def normalize(text: str) -> str:
    """Normalize a short answer for comparison.

    Casefolds, strips accents and punctuation, drops the articles a/an/the, collapses whitespace,
    removes thousands separators ("1,000" -> "1000") and writes number words as digits
    ("twenty-one" -> "21", "one hundred" -> "100"). Decimals ("3.5") and a leading minus sign
    ("-4") are kept.

    Args:
        text: Any text.

    Returns:
        The normalized text; empty when nothing but punctuation and articles was given.

    Example:
        >>> normalize("The Twenty-One Pilots!")
        '21 pilots'
    """
    return " ".join(_tokens(text))


def numbers(text: str) -> list[float]:
    """Find every number in a text, written in digits or in words.

    Args:
        text: Any text, e.g. a model's answer.

    Returns:
        The numbers in order of appearance ("1,000 and -3.5 or twelve" -> [1000.0, -3.5, 12.0]).
    """
    return [float(t) for t in _tokens(text) if _NUMBER.fullmatch(t)]


def as_number(text: str) -> float | None:
    """Read a text that is exactly one number after `normalize` ("12", "twelve", "1,000").

    Args:
        text: A short answer.

    Returns:
        Its value, or None when the text is not one number.
    """
    tokens = _tokens(text)
    if len(tokens) == 1 and _NUMBER.fullmatch(tokens[0]):
        return float(tokens[0])
    return None


def matches(prediction: str, answers: Sequence[str], *, numeric: bool | None = None) -> bool:
    """Decide whether a predicted short answer agrees with the gold answer or an alias.

    Text answers match when a normalized alias equals the normalized prediction or occurs in it as
    a whole-word span ("Paris" matches "It is Paris."). Numeric answers use the *last* number in
    the prediction, because small models echo the question's numbers first: "2+3 is 5" matches 5,
    "5 plus 3" does not.

    Args:
        prediction: The model's answer.
        answers: The gold answer and its aliases (a single string counts as one alias).
        numeric: Compare numbers (True), text (False), or decide from the gold: numeric when the
            first alias is one number, such as "12" or "twelve" (None).

    Returns:
        True when the prediction matches the gold answer.

    Raises:
        NasalensError: When ``answers`` is empty, or ``numeric=True`` and no alias is a number.

    Example:
        >>> matches("The answer is 12.", ["12", "twelve"])
        True
    """
    aliases = [answers] if isinstance(answers, str) else list(answers)
    if not aliases:
        raise NasalensError("matches(): answers is empty; pass the gold answer and its aliases")
    if numeric is None:
        numeric = as_number(aliases[0]) is not None
    if numeric:
        gold = [v for v in (as_number(a) for a in aliases) if v is not None]
        if not gold:
            raise NasalensError(
                f"matches(): numeric=True but no answer in {quote(aliases)} is a number; "
                "pass numeric=False to compare text"
            )
        found = numbers(prediction)
        return bool(found) and any(
            math.isclose(found[-1], g, rel_tol=1e-9, abs_tol=1e-9) for g in gold
        )
    pred = f" {normalize(prediction)} "
    for alias in aliases:
        norm = normalize(alias)
        if norm and f" {norm} " in pred:
            return True
    return False


def _conflict(a: str, b: str) -> bool:
    """True when one normalized answer equals the other or is a whole-word span of it."""
    na, nb = normalize(a), normalize(b)
    if not na or not nb:
        return na == nb
    return f" {na} " in f" {nb} " or f" {nb} " in f" {na} "


def conflicts(candidate: str, answers: Sequence[str]) -> bool:
    """Tell whether a candidate wrong answer could be read as one of the gold answers.

    Args:
        candidate: A proposed wrong answer.
        answers: The gold answer and its aliases.

    Returns:
        True when, after `normalize`, the candidate equals an alias, contains one as a whole-word
        span or is contained in one ("Scott" vs "Bobby Scott"), or (for numeric gold) has the
        same value.
    """
    value = as_number(candidate)
    for alias in answers:
        if _conflict(candidate, alias):
            return True
        gold = as_number(alias)
        if value is not None and gold is not None and math.isclose(value, gold, abs_tol=1e-9):
            return True
    return False


_PLACE_NOUNS = (
    "city|cities|country|countries|state|town|county|continent|river|island|ocean|sea|capital"
    "|nation|province|region|mountain|lake|place|village|district|desert|landmark|location"
)
_PERSON_NOUNS = (
    "person|man|woman|actor|actress|singer|author|writer|poet|president|king|queen|emperor"
    "|player|composer|painter|artist|scientist|inventor|director|musician|novelist|playwright"
    "|philosopher|politician|prime minister|leader|founder|explorer|astronaut|character"
)
_PLACE_Q = re.compile(
    rf"^\s*where\b|\bwhere (?:is|was|are|were|did|does|do)\b|\bcapital of\b"
    rf"|\b(?:which|what|whose)\b(?:\s+\w+){{0,3}}?\s+(?:{_PLACE_NOUNS})\b"
    rf"|\b(?:in|on|from|to) (?:which|what) (?:{_PLACE_NOUNS})\b"
)
_PERSON_Q = re.compile(
    rf"\b(?:who|whom|whose|who's)\b|\b(?:which|what) (?:{_PERSON_NOUNS})\b"
    rf"|\bname of the (?:{_PERSON_NOUNS})\b"
)
_COUNT_Q = re.compile(r"\bhow (?:many|much|long|old|far|big|tall|high)\b|\bwhat number\b")
_WORDY = re.compile(r"\d")


def answer_kind(question: str, answer: str) -> str:
    """Classify a short answer as number, year, person, place, yesno or other.

    Rules, in order: "yes"/"no" is yesno; a lone four-digit integer from 1000 to 2100 is a year
    (unless the question asks "how many/much"); any other lone number (digits or words) is a
    number; a question that asks for a place ("where", "which city/country/...", "capital of")
    with an answer of at most eight words and no digits is a place; a question that asks for a
    person ("who", "which author/painter/...") with an answer of at most six words and no digits
    is a person; everything else is other.

    Args:
        question: The question, in any case ("who wrote ...", "Which city ...?").
        answer: The gold answer.

    Returns:
        One of "number", "year", "person", "place", "yesno", "other".

    Example:
        >>> answer_kind("Who wrote Hamlet?", "William Shakespeare")
        'person'
    """
    norm = normalize(answer)
    if norm in ("yes", "no"):
        return "yesno"
    value = as_number(answer)
    q = _fold(question)
    if value is not None:
        is_year = re.fullmatch(r"\d{4}", answer.strip()) and 1000 <= value <= 2100
        return "year" if is_year and not _COUNT_Q.search(q) else "number"
    n_words = len(norm.split())
    plain = bool(norm) and not _WORDY.search(answer)
    if _PLACE_Q.search(q) and plain and n_words <= 8:
        return "place"
    if _PERSON_Q.search(q) and plain and n_words <= 6:
        return "person"
    return "other"


def wrong_number(gold: str, rng: random.Random) -> str:
    """Make a plausible wrong number for a numeric gold answer.

    The result is the gold plus or minus a small offset scaled to its magnitude (18 -> 15..21,
    70000 -> 67000..73000), or the gold times or divided by 2. It never equals the gold and keeps
    its sign (a zero gold gives a positive number) and its integer-ness (a decimal gold gives a
    non-integer).

    Args:
        gold: The gold number in digits, e.g. "18", "-3", "2,125" or "3.5".
        rng: The random generator that picks one candidate (seed it for determinism).

    Returns:
        The wrong number in plain digits, without thousands separators.

    Raises:
        NasalensError: When ``gold`` is not a number.
    """
    try:
        value = Decimal(gold.replace(",", "").strip())
    except InvalidOperation as err:
        raise NasalensError(
            f"wrong_number(): gold {quote(gold)} is not a number; pass digits such as '18' or '3.5'"
        ) from err
    if not value.is_finite():
        raise NasalensError(f"wrong_number(): gold {quote(gold)} is not a finite number")
    is_int = value == value.to_integral_value()
    magnitude = abs(value)
    step = Decimal(1)
    if is_int and magnitude >= 100:
        step = Decimal(10) ** (len(str(int(magnitude))) - 2)
    candidates = [value + k * step for k in (-3, -2, -1, 1, 2, 3)]
    candidates += [value * 2, value / 2]

    kept = [
        c
        for c in candidates
        if c != value
        and ((c > 0) if value >= 0 else (c < 0))  # same sign; a zero gold gives a positive
        and (c == c.to_integral_value()) == is_int
    ]
    assert kept, f"no wrong number for {gold!r}"  # gold + 1 (or gold - 1 if negative) qualifies
    return _canonical(rng.choice(kept))
