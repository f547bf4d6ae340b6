"""Smart-community gateway: devices to MQTT, alerts and a time-series store, on one Pi."""

__version__ = "0.1.0"
