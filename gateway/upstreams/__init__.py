"""Upstreams: outside platforms the compound shares with, each a journal consumer of its own
behind a sharing policy, with an audit of what left."""
