"""Bytes to text: byte-order marks, UTF-16 with or without a BOM, UTF-8, else Latin-1.

X12 is ASCII in practice, but files arrive re-encoded by whatever touched them last: Windows tools
write UTF-16 (often without a BOM), editors add a UTF-8 BOM, and a few senders use Latin-1 names.
NUL bytes are how UTF-16 without a BOM shows itself: ASCII text in UTF-16-LE has a NUL at every odd
offset (big-endian: every even offset). Anything else with NULs in it is binary and refused.
"""

from __future__ import annotations

from .model import ParseError, ParseWarning

_SAMPLE = 4096
_BLANK = b" \t\r\n\x00\x1a"


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the NUL pattern says so, else None."""
    sample = data[:_SAMPLE]
    half = len(sample) // 2
    if half == 0:
        return None
    even_nuls = sample[0::2].count(0)
    odd_nuls = sample[1::2].count(0)
    if odd_nuls >= 0.9 * half and even_nuls <= 0.1 * half:
        return "utf-16-le"
    if even_nuls >= 0.9 * half and odd_nuls <= 0.1 * half:
        return "utf-16-be"
    return None


def decode(data: bytes) -> tuple[str, list[ParseWarning]]:
    """The text of a file, and warnings about how it was encoded. Raises ParseError for empty or
    binary input."""
    warnings: list[ParseWarning] = []
    if not data or (not data[:_SAMPLE].strip(_BLANK) and not data.strip(_BLANK)):
        raise ParseError("the file is empty")
    encoding: str
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise ParseError("UTF-32 text is not supported; send UTF-8 or ASCII", "byte 0")
    if data.startswith(b"\xef\xbb\xbf"):
        encoding, data = "utf-8", data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        encoding = "utf-16"  # the codec reads the BOM and drops it
    elif b"\x00" in data.rstrip(b"\x00")[:_SAMPLE]:  # NULs inside the text, not just padding after it
        guessed = _utf16_without_bom(data)
        if guessed is None:
            raise ParseError("binary data (NUL bytes), not X12 or JSON text", "byte 0")
        encoding = guessed
        warnings.append(ParseWarning("encoding", f"no byte-order mark; read as {guessed.upper()}"))
    else:
        encoding = "utf-8"
    if encoding == "utf-8":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = data.decode("latin-1")
            warnings.append(
                ParseWarning(
                    "encoding", f"not UTF-8 (byte {exc.start}); read as Latin-1", f"byte {exc.start}"
                )
            )
    else:
        if len(data) % 2:
            warnings.append(ParseWarning("encoding", "odd number of bytes in UTF-16 text; last byte dropped"))
            data = data[:-1]
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ParseError(f"not valid {encoding.upper()} text", f"byte {exc.start}") from None
    text = text.lstrip("\ufeff")
    stripped = text.rstrip("\x00\x1a \t\r\n")  # NUL padding and a DOS end-of-file mark
    if "\x00" in stripped:
        raise ParseError(
            "binary data (NUL bytes), not X12 or JSON text", f"character {stripped.index(chr(0))}"
        )
    if text[len(stripped) :].strip(" \t\r\n"):  # what was cut is more than blanks
        warnings.append(ParseWarning("padding", "NUL or end-of-file padding after the data was ignored"))
    return stripped, warnings
