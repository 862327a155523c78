"""``idrflow parse FILE``: read an 835, an 837, a FHIR EOB or idrflow claim JSON and print what was
read as JSON (format, claims, warnings, and the 835's remittances). Unreadable input: a message on
stderr naming the segment or field, exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer

from services.intake.formats import ParseError, parse, to_jsonable


def parse_command(
    file: Annotated[Path, typer.Argument(help="the file to read; - reads stdin", allow_dash=True)],
    check_profile: Annotated[
        bool, typer.Option(help="FHIR: also warn about elements R4 requires that are missing")
    ] = False,
    compact: Annotated[bool, typer.Option(help="one line of JSON instead of indented JSON")] = False,
) -> None:
    """Parse one file (format detected from its content) and print the claims and warnings as JSON."""
    name = "stdin" if str(file) == "-" else str(file)
    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        typer.echo(f"idrflow: {name}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    try:
        result = parse(data, filename=None if name == "stdin" else file.name, check_profile=check_profile)
    except ParseError as exc:
        typer.echo(f"idrflow: {name}: {exc}", err=True)
        raise typer.Exit(2) from None
    out = {
        "format": result.format,
        "claims": to_jsonable(result.claims),
        "warnings": to_jsonable(result.warnings),
        "remittances": to_jsonable(result.remittances),
    }
    typer.echo(orjson.dumps(out, option=0 if compact else orjson.OPT_INDENT_2).decode())
