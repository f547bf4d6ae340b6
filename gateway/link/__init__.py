"""The broker connection's parts: the MQTT 5 connection on the event loop, packet
boundaries, routing, dispatch."""
