"""Lossless bytes <-> str for addresses: qmail is 8-bit clean, so we decode as latin-1."""


def b2s(data: bytes) -> str:
    """Decode wire bytes to a str that maps each byte to one code point."""
    return data.decode("latin-1")


def s2b(text: str) -> bytes:
    """Encode a str made by `b2s` back to the same bytes."""
    return text.encode("latin-1")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def case_lower(text: str) -> str:
    """Lowercase A-Z only, as qmail's case_lowerb and constmap do (`À` stays `À`)."""
    return text.translate(_ASCII_LOWER)
