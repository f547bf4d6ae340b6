"""The peers the gateway is measured against: Node-RED and ThingsBoard's IoT gateway.

Each is installed from its registry into bench/.peers/ (git-ignored), at pinned versions,
by `python -m bench` itself; when a registry cannot be reached the benchmark that needs
the peer is skipped with the reason, and the rest run.
"""
