"""Sinks: each consumes the journal with its own cursor and delivers at least once."""
