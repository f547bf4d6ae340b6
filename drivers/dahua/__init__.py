"""Dahua access and face-temperature terminals: the event stream the gateway holds open.

`events` reads one part of the stream and maps it onto the kinds' model; `client` holds
`eventManager.cgi?action=attach` open, one task per terminal.
"""
