"""Pure regulatory rules: calendars and deadlines (no I/O)."""
