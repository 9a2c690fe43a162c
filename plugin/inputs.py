"""Checks of user input shared by search and answering (one message style).

Each check returns the cleaned value or raises
:class:`~plugin.errors.InvalidInputError` with a message for the user.
"""

import math

from plugin.errors import InvalidInputError

MAX_QUERY_CHARS = 1000  # CLIP-family text towers read ~77 tokens anyway


def require_text(value, what, limit, empty_hint="", long_hint=""):
    """``value`` stripped; refuses empty text and text over ``limit`` chars.

    The hints end the messages, e.g. ``empty_hint="type a question first"``.
    """
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(
            f"The {what} must be text, got {type(value).__name__} {value!r:.40}"
        )
    text = (value or "").strip()
    if not text:
        raise InvalidInputError(f"The {what} is empty" + _tail(empty_hint, ": "))
    if len(text) > limit:
        raise InvalidInputError(
            f"The {what} is {len(text)} characters long; the limit is {limit}"
            + _tail(long_hint, " ")
        )
    return text


def _tail(hint, sep):
    return f"{sep}{hint}" if hint else ""


def validate_query(query):
    """A search text: stripped, non-empty, at most :data:`MAX_QUERY_CHARS`."""
    return require_text(
        query,
        "search text",
        MAX_QUERY_CHARS,
        long_hint="(text models read only the first ~77 tokens)",
    )


def require_int(name, value, lowest=1, optional=False):
    """``value`` if it is an integer >= ``lowest`` (None allowed if ``optional``)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise InvalidInputError(f"{name} must be an integer >= {lowest}, got {value!r}")
    return value


def require_sample_ids(ids, what="sample ids"):
    """``ids`` as a list of strings if each is a valid sample id (a 24-hex
    ObjectId); else an :class:`InvalidInputError` listing the bad ones (not
    bson's raw ``InvalidId``)."""
    from bson import ObjectId

    if isinstance(ids, str):
        ids = [ids]
    ids = list(ids or [])
    bad = [i for i in ids if not isinstance(i, str) or not ObjectId.is_valid(i)]
    if bad:
        shown = ", ".join(repr(i) for i in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise InvalidInputError(
            f"Malformed {what}: {shown}{more}. A sample id is 24 hexadecimal "
            "characters (sample.id in FiftyOne)."
        )
    return ids


def positive_number(value, label, default=None, integer=False, highest=None):
    """``value`` as a positive number (``default`` when None or ""); refuses
    text, NaN, infinities, zero or less, values above ``highest`` and, with
    ``integer``, fractions, naming the field by ``label``."""
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInputError(f"{label} must be a number, got {value!r:.40}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(f"{label} must be a positive number, got {value!r}")
    if highest is not None and value > highest:
        raise InvalidInputError(f"{label} must be at most {highest}, got {value!r}")
    if integer and value != int(value):
        raise InvalidInputError(f"{label} must be a whole number, got {value!r}")
    return int(value) if integer else float(value)
