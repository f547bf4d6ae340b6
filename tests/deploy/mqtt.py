"""A blocking MQTT 5 client for the deploy tests, on paho: it reports the broker's reason
codes (aiomqtt does not surface a PUBACK's), and every wait is bounded."""

from __future__ import annotations

import itertools
import queue
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

TIMEOUT = 10.0
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
_ids = itertools.count(1)


class Client:
    def __init__(self, port: int, user: str | None = None, password: str | None = None,
                 ca_file: Path | None = None, client_id: str | None = None,
                 protocol: MQTTProtocolVersion = mqtt.MQTTv5) -> None:
        self.port = port
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2,
                                client_id=client_id or f"deploy-test-{next(_ids)}",
                                protocol=protocol)
        self.disconnects = 0  # connections the broker ended
        if user is not None:
            self.paho.username_pw_set(user, password)
        if ca_file is not None:
            self.paho.tls_set(ca_certs=str(ca_file))  # verifies the broker's name too
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connack: queue.Queue[ReasonCode] = queue.Queue()
        self._acks: dict[int, ReasonCode] = {}
        self._acked = threading.Condition()
        self.paho.on_connect = self._on_connect
        self.paho.on_publish = self._on_publish
        self.paho.on_subscribe = self._on_subscribe
        self.paho.on_message = lambda _c, _u, message: self.messages.put(message)
        self.paho.on_disconnect = self._on_disconnect

    def connect(self) -> ReasonCode:
        """The CONNACK's reason code; raises what the TLS handshake raises."""
        self.paho.connect("127.0.0.1", self.port, keepalive=30)
        self.paho.loop_start()
        return self._connack.get(timeout=TIMEOUT)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        """Publish with QoS 1; the PUBACK's reason code."""
        info = self.paho.publish(topic, payload, qos=1)
        return self._wait_ack(info.mid)

    def subscribe(self, topic_filter: str) -> ReasonCode:
        _, mid = self.paho.subscribe(topic_filter, qos=1)
        assert mid is not None
        return self._wait_ack(mid)

    def next_message(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def _wait_ack(self, mid: int) -> ReasonCode:
        with self._acked:
            if not self._acked.wait_for(lambda: mid in self._acks, timeout=TIMEOUT):
                raise TimeoutError(f"no acknowledgement of message {mid}")
            return self._acks.pop(mid)

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: ReasonCode,
                    _properties: Any) -> None:
        self._connack.put(reason)

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, _reason: ReasonCode,
                       _properties: Any) -> None:
        self.disconnects += 1

    def _on_publish(self, _client: Any, _userdata: Any, mid: int, reason: ReasonCode,
                    _properties: Any) -> None:
        with self._acked:
            self._acks[mid] = reason
            self._acked.notify_all()

    def _on_subscribe(self, _client: Any, _userdata: Any, mid: int, reasons: list[ReasonCode],
                      _properties: Any) -> None:
        with self._acked:
            self._acks[mid] = reasons[0]
            self._acked.notify_all()
