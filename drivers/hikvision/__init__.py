"""Hikvision access and face-temperature terminals: ISAPI event notifications they push.

`codes` maps the access controller's event codes, `alert` turns one notification into the
kinds' model, `push` serves the pushes on the gateway's HTTP port, `setup` points a terminal
at the gateway.
"""
