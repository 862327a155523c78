"""A lenient X12 tokenizer: separators read from the data, segments as strings.

With an ISA envelope the separators come from the ISA itself: the element separator is the character
right after ``ISA``, the component separator is ISA16, the repetition separator is ISA11 (5010 only;
4010 has the standards id ``U`` there) and the segment terminator is the character right after ISA16.
The ISA is read by counting its 16 element separators rather than by fixed offsets, so a short
(unpadded) ISA or one broken by 80-column wrapping reads the same. Every ISA in the file starts a new
``Chunk`` with its own separators: files that concatenate interchanges from different senders exist.

Without an ISA the element separator is the character after the first segment tag, the terminator
is ``~`` when the text has one, else the newline; the component separator is assumed to be ``:``
(``Values.composite`` falls back to what the data actually uses).

Line breaks: with a ``~`` terminator, CR and LF are not data, so they are deleted (this also joins
80-column wrapped lines). With a newline terminator, a line that does not start with a segment tag
continues the line before (wrapping). Indentation and blank lines are dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from .model import ParseError, ParseWarning

# "ISA", the element separator, two characters (ISA01), the same separator
_ISA = re.compile(r"ISA([^A-Za-z0-9\s])..\1", re.DOTALL)
_FIRST_TAG = re.compile(r"([A-Z][A-Z0-9]{1,2})([^A-Za-z0-9\s])")
_NEWLINES = re.compile(r"\r\n?|\n")


@dataclass(slots=True)
class Delimiters:
    element: str
    component: str
    repetition: str | None
    segment: str


@dataclass(slots=True)
class Chunk:
    """One interchange (or the whole file when it has no ISA): its separators and its segments."""

    delimiters: Delimiters
    segments: list[str]
    first: int  # the 1-based number (in the file) of segments[0]
    isa: list[str] | None = None  # the ISA's elements, when there is one


def _read_isa(text: str, pos: int) -> tuple[list[str], str, int] | None:
    """The ISA at ``pos``: its elements (ISA16 included), the segment terminator, and the position
    after it. Line breaks inside the ISA (wrapping) are skipped. None when it is not a full ISA."""
    sep = text[pos + 3]
    end = min(len(text), pos + 400)
    buf: list[str] = []
    count = 0
    i = pos
    while i < end and count < 16:
        c = text[i]
        if c == sep:
            count += 1
        if c not in "\r\n":
            buf.append(c)
        i += 1
    while i < end and text[i] in "\r\n":
        i += 1
    if count < 16 or i >= end:
        return None
    component = text[i]
    i += 1
    if i >= len(text):
        return None
    terminator = text[i]
    if terminator == "\r":
        terminator = "\n"
        i += 1 if text[i + 1 : i + 2] == "\n" else 0
    elements = "".join(buf).split(sep)[:16]
    elements.append(component)
    return elements, terminator, i + 1


def _guess_terminator(text: str, sep: str) -> str:
    if "~" in text and sep != "~":
        return "~"
    if "\n" in text or "\r" in text:
        return "\n"
    # a single line: the character most often found right before "<tag><sep>"
    counts: dict[str, int] = {}
    for m in re.finditer(r"([^A-Za-z0-9\s])[A-Z][A-Z0-9]{1,2}" + re.escape(sep), text):
        c = m.group(1)
        if c != sep:
            counts[c] = counts.get(c, 0) + 1
    if not counts:
        return "~"
    return max(counts, key=lambda c: counts[c])


def _split_lines(text: str, sep: str, warnings: list[ParseWarning]) -> list[str]:
    """Newline-terminated segments; a line that does not start with a tag continues the last one."""
    out: list[str] = []
    tag = re.compile(r"[A-Z][A-Z0-9]{1,2}" + re.escape(sep))
    wrapped = False
    for raw in _NEWLINES.split(text):
        line = raw.strip()
        if not line:
            continue
        if out and not tag.match(line):
            out[-1] += line
            wrapped = True
        else:
            out.append(line)
    if wrapped:
        warnings.append(ParseWarning("wrapped", "lines that do not start with a segment tag were joined"))
    return out


def _join_lines(text: str, d: Delimiters, warnings: list[ParseWarning]) -> str:
    """Drop the line breaks of a ``~``-terminated text. A break that stands for a missing terminator
    (the line does not end with one and the next starts with a tag) becomes one, unless every line
    has the same width (fixed-width wrapping, where breaks fall anywhere)."""
    term = d.segment
    if "\r" in text:
        text = _NEWLINES.sub("\n", text)
    joined = text.replace(term + "\n", term)
    if "\n" not in joined:
        return joined  # the common case: a break after each terminator (and nowhere else)
    lines = [ln.rstrip(" \t") for ln in text.split("\n")]
    lines = [ln for ln in lines if ln]
    if len(lines) >= 3:
        widths = Counter(len(ln) for ln in lines[:-1])
        width, count = widths.most_common(1)[0]
        if width >= 40 and count >= 0.8 * (len(lines) - 1):
            warnings.append(ParseWarning("wrapped", f"fixed-width lines of {width} characters were joined"))
            return "".join(lines)
    tag = re.compile(r"\s*[A-Z][A-Z0-9]{1,2}" + re.escape(d.element))
    out: list[str] = []
    missing = 0
    for ln in lines:
        if out and not out[-1].endswith(term) and tag.match(ln):
            out.append(term)
            missing += 1
        out.append(ln)
    if missing:
        warnings.append(
            ParseWarning("missing_terminator", f"{missing} line break(s) read as segment terminators")
        )
    return "".join(out)


def _split_segments(text: str, d: Delimiters, warnings: list[ParseWarning]) -> list[str]:
    term = d.segment
    if term == "\n":
        return _split_lines(text, d.element, warnings)
    if "\n" in text or "\r" in text:
        text = _join_lines(text, d, warnings)
    if term + " " in text or ("\t" in text and term + "\t" in text) or text[:1] in (" ", "\t"):
        text = re.sub(re.escape(term) + r"[ \t]+", term, text).lstrip(" \t")
    segments = text.split(term)
    if segments and not segments[-1].strip():
        segments.pop()
    if "" in segments:
        segments = [s for s in segments if s]
    return segments


def tokenize(text: str) -> tuple[list[Chunk], list[ParseWarning]]:
    """Split X12 text into chunks of segments. Raises ParseError when no segment can be found."""
    warnings: list[ParseWarning] = []
    text = text.lstrip("\ufeff \t\r\n")
    starts: list[tuple[int, tuple[list[str], str, int]]] = []
    for m in _ISA.finditer(text):
        pos = m.start()
        before = text[pos - 1] if pos else ""
        if before and (before.isalnum() or before == m.group(1)):
            continue  # "ISA" inside an element, not a segment
        isa = _read_isa(text, pos)
        if isa is None:
            warnings.append(
                ParseWarning(
                    "isa", "an ISA segment is cut short; its separators were not read", f"character {pos}"
                )
            )
            continue
        starts.append((pos, isa))
    chunks: list[Chunk] = []
    number = 1
    if not starts:
        first = _FIRST_TAG.match(text)
        if first is None:
            raise ParseError(
                "not X12: the text does not start with a segment tag such as ISA, ST or CLP", "segment 1"
            )
        sep = first.group(2)
        d = Delimiters(sep, ":", None, _guess_terminator(text, sep))
        warnings.append(
            ParseWarning(
                "no_envelope", "no ISA envelope: separators inferred from the first segment", "segment 1"
            )
        )
        segments = _split_segments(text, d, warnings)
        return [Chunk(d, segments, 1)], warnings
    if text[: starts[0][0]].strip():
        warnings.append(
            ParseWarning("leading_garbage", "text before the first ISA was ignored", "character 0")
        )
    for k, (pos, (elements, term, after)) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        sep = text[pos + 3]
        rep = elements[11] if elements[12].strip() >= "00501" and not elements[11].isalnum() else None
        d = Delimiters(sep, elements[16], rep, term)
        if term.isalnum() or term == sep:
            warnings.append(
                ParseWarning(
                    "isa",
                    f"segment terminator {term!r} after ISA16 is not plausible; guessed instead",
                    f"segment {number} (ISA) ISA16",
                    number,
                )
            )
            d.segment = _guess_terminator(text[after:end], sep)
        body = text[after:end].lstrip()
        segments = [sep.join(elements[:16]) + sep + elements[16]]
        segments.extend(_split_segments(body, d, warnings))
        chunks.append(Chunk(d, segments, number, elements))
        number += len(segments)
    return chunks, warnings
