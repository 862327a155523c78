"""Loaded by ``schemathesis run`` (``SCHEMATHESIS_HOOKS=tests.fuzz.hooks``): X12 files are text, so
the fuzzer sends ``application/edi-x12`` bodies the way it sends ``text/plain``."""

from __future__ import annotations

import schemathesis

schemathesis.serializer.alias("application/edi-x12", "text/plain")
