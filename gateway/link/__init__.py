"""The broker connection's parts: one paho client on the event loop, routing, dispatch."""
