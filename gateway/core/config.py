"""The gateway's TOML configuration as typed, frozen pydantic models.

What the file may say, key by key; `gateway.config_file` reads a file into these models and
checks what a schema cannot (duplicates, references, profiles, secrets).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    field_validator,
    model_validator,
)

from gateway.core.model import DEVICE_KINDS, DeviceKind
from gateway.core.upstream_config import SharingConfig, UpstreamConfig

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


DEFAULT_MAX_PAYLOAD = 65_536
BROKER_MESSAGE_LIMIT = 262_144  # message_size_limit of the installed and private brokers


class BrokerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default="", max_length=64)
    username: str | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=86_400, ge=60)
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(default=30.0, gt=0, le=3600)
    publish_timeout_s: float = Field(default=10.0, gt=0, le=600)
    # QoS 1 messages sent and not yet acknowledged by the broker, at most: alerts go out
    # this many per round trip; lowered to the broker's own Receive Maximum (Mosquitto's
    # max_inflight_messages, 20 unless its configuration says otherwise)
    max_inflight: int = Field(default=1000, ge=1, le=65_535)
    # after a lost connection, publish again what the broker confirmed this long before the
    # loss: a broker that crashes may have acknowledged messages it never delivered
    replay_window_s: float = Field(default=30.0, ge=0, le=3600)
    # a message the broker delivers again within this long of journalling it (same packet
    # id, same content) is recognised as the same message and journalled only once
    redelivery_window_s: float = Field(default=3600.0, ge=0, le=86_400)
    # a device's or an acknowledgement's payload beyond this is refused unread (counted);
    # the installed broker refuses more than BROKER_MESSAGE_LIMIT itself
    max_payload_bytes: int = Field(default=DEFAULT_MAX_PAYLOAD, ge=256,
                                   le=BROKER_MESSAGE_LIMIT)
    # devices of these kinds are read on the gateway's own broker session, the others on
    # a session of their own (client id "{client_id}-bulk"), so that a backlog of their
    # readings never holds an alarm back; empty: one session for all
    alarm_lane_kinds: list[DeviceKind] = Field(default_factory=lambda: [
        DeviceKind.ELDER_BUTTON, DeviceKind.SMOKE, DeviceKind.MANHOLE, DeviceKind.ACCESS])


class StoreConfig(_Strict):
    # "v2": /api/v2/write (InfluxDB 2.x/3.x, Cloud, 1.8+, VictoriaMetrics);
    # "v1": the 1.x /write endpoint (Debian's `influxdb` package)
    api: Literal["v2", "v1"] = "v2"
    url: str = Field(pattern=r"^https?://")
    org: str = "scgw"  # v2
    bucket: str = "scgw"  # v2
    token_env: str | None = None  # v2: the API token
    database: str = Field(default="scgw", min_length=1)  # v1
    retention_policy: str | None = None  # v1; None: the database's default
    username: str | None = None  # v1, with the password in password_env
    password_env: str | None = None  # v1
    # a write request costs the store and the gateway far more than a point in it: at 500
    # the sink, one request at a time, fell behind from about 20,000 readings a second
    batch_size: int = Field(default=2_000, ge=1, le=50_000)
    flush_interval_s: float = Field(default=1.0, gt=0, le=600)
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    retry_min_s: float = Field(default=0.5, gt=0, le=60)
    retry_max_s: float = Field(default=30.0, gt=0, le=3600)
    # after a new connection to the store (it may have restarted), write again the journal
    # records it accepted this long before: a store that crashes may lose what it had
    # answered 2xx to and not yet flushed (VictoriaMetrics: about the last second)
    replay_window_s: float = Field(default=10.0, ge=0, le=3600)


class JournalConfig(_Strict):
    path: Path = Path("journal.db")
    telemetry_capacity: int = Field(default=10_000, ge=10, le=10_000_000)
    # disk space: events are refused (counted) first, alarms keep a reserve of their own
    max_mb: float = Field(default=512.0, gt=0)
    alarm_reserve_mb: float = Field(default=32.0, ge=0)
    min_free_disk_mb: float = Field(default=64.0, ge=0)
    prune_interval_s: float = Field(default=60.0, gt=0, le=86_400)
    # `scgw status` data, rewritten every 2 s: beside the journal unless set; on a Pi, a RAM
    # file system (/run) spares the SD card
    status_path: Path | None = None


class Location(_Strict):
    building: str | None = None
    unit: str | None = None
    floor: int | None = None

    def label(self) -> str:
        parts = []
        if self.building is not None:
            parts.append(f"building {self.building}")
        if self.unit is not None:
            parts.append(f"unit {self.unit}")
        if self.floor is not None:
            parts.append(f"floor {self.floor}")
        return ", ".join(parts) or "unknown location"


class GpioButtonSettings(_Strict):
    pin: int = Field(ge=0, le=27)
    led_pin: int | None = Field(default=None, ge=0, le=27)
    pull_up: bool = True
    debounce_ms: int = Field(default=50, ge=0, le=2000)
    long_press_s: float = Field(default=3.0, gt=0, le=60)
    blink_on_s: float = Field(default=0.5, gt=0, le=10)
    blink_off_s: float = Field(default=0.5, gt=0, le=10)


class MqttIngressSettings(_Strict):
    topic: str = Field(min_length=1)
    event_key: str | None = None
    events: dict[str, str] = Field(default_factory=dict)
    readings: list[str] = Field(default_factory=list)
    # where a bridge (zigbee2mqtt) says online/offline for the device; else its profile's
    availability_topic: str | None = Field(default=None, min_length=1)

    @field_validator("topic", "availability_topic")
    @classmethod
    def _no_wildcards(cls, value: str | None) -> str | None:
        if value is not None and ("+" in value or "#" in value):
            raise ValueError("an ingress topic names one device: no wildcards")
        return value


class ModbusBusConfig(_Strict):
    """One physical Modbus bus (an RS-485 port, or a Modbus TCP gateway): one owner task."""

    id: str = Field(pattern=_NAME)
    type: Literal["rtu", "tcp"]
    port: str | None = None  # rtu: the serial device, e.g. /dev/serial0
    host: str | None = None  # tcp
    tcp_port: int = Field(default=502, ge=1, le=65535)
    baudrate: int = Field(default=9600, ge=1200, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    inter_frame_ms: float = Field(default=5.0, ge=0, le=1000)
    retry_max_s: float = Field(default=60.0, gt=0, le=3600)


class ModbusSettings(_Strict):
    bus: str
    unit: int = Field(ge=1, le=247)
    poll_s: float = Field(default=10.0, gt=0, le=3600)
    alarm_poll_s: float = Field(default=1.0, gt=0, le=3600)


class SerialSettings(_Strict):
    port: str = Field(min_length=1)
    baudrate: int = Field(default=9600, ge=1200, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class HttpSettings(_Strict):
    token: str = Field(min_length=16)
    # "bearer": the token itself in the Authorization header (a captured push can be sent
    # again); "signed": an HMAC of the push made with the token, a timestamp and a nonce
    auth: Literal["bearer", "signed"] = "bearer"


class HttpTlsConfig(_Strict):
    cert_file: Path
    key_file: Path
    ca_file: Path | None = None  # set: devices must present a certificate it signed


class HttpServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=16_384, ge=256, le=10_485_760)
    # the push port is open to the LAN without authentication until a request arrives:
    # every connection is bounded in number and time
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    idle_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    body_timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_connections: int = Field(default=256, ge=1, le=4096)
    max_connections_per_address: int = Field(default=16, ge=1, le=4096)
    tls: HttpTlsConfig | None = None
    # a signed push is refused when its timestamp is further than this from the gateway's
    # clock, or when its nonce was already seen within it
    replay_window_s: float = Field(default=300.0, ge=10, le=3600)
    # nonces remembered per device inside the window; beyond, its pushes are refused (429)
    max_nonces_per_device: int = Field(default=4096, ge=8, le=65_536)
    # a push that carries pictures (Hikvision terminals) may be this large in all; the
    # pictures are read past, never kept, and its event part is held to max_body_bytes
    max_picture_push_bytes: int = Field(default=2_097_152, ge=1024, le=16_777_216)
    # pushes handled at once (from reading the body to the answer), and of them the ones
    # kept for devices of broker.alarm_lane_kinds: beyond max_pushes - alarm_pushes_reserved,
    # another device's push is answered 503 at once, before its body is read, so that a
    # flooding device never holds the connections an alarm needs
    max_pushes: int = Field(default=64, ge=2, le=4096)
    alarm_pushes_reserved: int = Field(default=16, ge=1, le=4095)
    # a device's push refused for its rate (429) is answered this long after the refusal:
    # its connection, which waits for the answer before it sends again, sends at most one
    # push a hold. At most a quarter of max_connections are held at once; beyond, and with
    # 0, the 429 goes at once
    throttled_hold_s: float = Field(default=1.0, ge=0, le=10)

    @model_validator(mode="after")
    def _reserve_within_the_budget(self) -> HttpServerConfig:
        if self.alarm_pushes_reserved >= self.max_pushes:
            raise ValueError(f"alarm_pushes_reserved ({self.alarm_pushes_reserved}) must be "
                             f"below max_pushes ({self.max_pushes})")
        return self


class Gb26875ServerConfig(_Strict):
    """The TCP port GB/T 26875.3 transmission devices connect to, as to a monitoring centre."""

    host: str = "127.0.0.1"
    port: int = Field(default=9030, ge=1, le=65535)
    # the standard carries frames over TCP or UDP: a UDP port too, for devices that use it
    udp_port: int | None = Field(default=None, ge=1, le=65535)
    max_connections: int = Field(default=64, ge=1, le=4096)
    # a connection that sends no complete frame for this long is closed (a device sends a
    # heartbeat every 20-30 s)
    idle_timeout_s: float = Field(default=300.0, gt=0, le=86_400)
    # a frame sent again (same device, same serial number and content) within this long of
    # the first is recognised and confirmed without being journalled again
    redelivery_window_s: float = Field(default=3600.0, ge=0, le=86_400)


class Gb26875Settings(_Strict):
    """Either a transmission device (`address`) or a component behind one (`via`,
    `component`: system address - zone - position, e.g. `1-3-017`)."""

    address: int | None = Field(default=None, ge=0, le=(1 << 48) - 1)
    via: str | None = Field(default=None, pattern=_NAME)
    component: str | None = Field(default=None, pattern=r"^\d{1,3}-\d{1,5}-\d{1,5}$")
    zone: str | None = Field(default=None, max_length=64)  # where on its floor

    @model_validator(mode="after")
    def _one_role(self) -> Gb26875Settings:
        if (self.address is None) == (self.via is None):
            raise ValueError("give address (a transmission device) or via and component "
                             "(a component behind one)")
        if (self.via is None) != (self.component is None):
            raise ValueError("via and component go together")
        return self


class MetricsConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=1, le=65535)


class ConsoleTlsConfig(_Strict):
    cert_file: Path
    key_file: Path


class ConsoleConfig(_Strict):
    """The duty office's console: a web page served by the gateway on the compound's LAN."""

    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=1, le=65535)
    tls: ConsoleTlsConfig | None = None  # without it, plain HTTP (a trusted LAN only)
    # accounts (`scgw users`) and sessions: beside the journal unless set
    users_file: Path | None = None
    session_hours: float = Field(default=12.0, gt=0, le=168)
    language: Literal["zh-CN", "en"] = "zh-CN"  # when neither the user nor the browser says
    # an alert's timeline (who did what, when) is kept this long after it resolved
    keep_days: float = Field(default=30.0, gt=0, le=3650)


class _DeviceBase(_Strict):
    id: str = Field(pattern=_NAME)
    kind: DeviceKind
    location: Location = Location()
    heartbeat_s: float = Field(default=0, ge=0, le=86_400)
    profile: str | None = None
    # labels an operator gives, e.g. "fire-system" or "public-area": sharing policies select
    # records by them (select.tags)
    tags: list[Annotated[str, Field(pattern=_NAME)]] = Field(default_factory=list,
                                                            max_length=32)

    @field_validator("kind")
    @classmethod
    def _a_device_kind(cls, kind: DeviceKind) -> DeviceKind:
        if kind is DeviceKind.GATEWAY:
            raise ValueError("kind 'gateway' is the gateway's own, not a device's (one of: "
                             f"{', '.join(sorted(DEVICE_KINDS))})")
        return kind


class GpioDevice(_DeviceBase):
    transport: Literal["gpio"]
    gpio: GpioButtonSettings


class MqttDevice(_DeviceBase):
    transport: Literal["mqtt"]
    mqtt: MqttIngressSettings


class ModbusDevice(_DeviceBase):
    transport: Literal["modbus"]
    modbus: ModbusSettings


class SerialDevice(_DeviceBase):
    transport: Literal["serial"]
    serial: SerialSettings


class HttpDevice(_DeviceBase):
    transport: Literal["http"]
    http: HttpSettings


# -- NB-IoT devices behind an operator's platform (OneNET, CTWing) -------------------------

class OneNetSettings(_Strict):
    """A device on China Mobile's OneNET: its project's product id and device name, or the
    IMEI that LwM2M devices report."""

    product_id: str | None = Field(default=None, min_length=1, max_length=64)
    device_name: str | None = Field(default=None, min_length=1, max_length=64)
    imei: str | None = Field(default=None, pattern=r"^[0-9]{15}$")


class OneNetDevice(_DeviceBase):
    transport: Literal["onenet"]
    onenet: OneNetSettings


class CtwingSettings(_Strict):
    """A device on China Telecom's CTWing (AEP): the platform's device id, or its IMEI."""

    device_id: str | None = Field(default=None, min_length=1, max_length=64)
    imei: str | None = Field(default=None, pattern=r"^[0-9]{15}$")
    product_id: str | None = Field(default=None, min_length=1, max_length=64)


class CtwingDevice(_DeviceBase):
    transport: Literal["ctwing"]
    ctwing: CtwingSettings


class OneNetConfig(_Strict):
    """The OneNET push instance pointed at the gateway (served on the [http] port)."""

    path: str = Field(default="/onenet", pattern=r"^/[A-Za-z0-9/_.-]{0,127}$")
    token: str = Field(min_length=6, max_length=64)  # the instance's Token
    # the 16-character key of an instance in secure mode (安全模式); none: plaintext mode
    aes_key: str | None = Field(default=None, min_length=16, max_length=16)
    # OneNET pushes a message again for 2 h 45 min until it gets a 200 within 5 s: a message
    # id seen again within this long is the same message
    redelivery_window_s: float = Field(default=10_800.0, ge=0, le=86_400)


class CtwingConfig(_Strict):
    """The CTWing subscription pointed at the gateway (served on the [http] port).

    CTWing signs nothing: the subscription's URL carries a secret, {path}/{token}."""

    path: str = Field(default="/ctwing", pattern=r"^/[A-Za-z0-9/_.-]{0,127}$")
    token: str = Field(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    redelivery_window_s: float = Field(default=3600.0, ge=0, le=86_400)


class Gb26875Device(_DeviceBase):
    transport: Literal["gb26875"]
    gb26875: Gb26875Settings


class HikvisionSettings(_Strict):
    """A Hikvision terminal pushing ISAPI notifications to the HTTP port (its alarm server)."""

    # the credentials the terminal sends with each push (its alarm-server settings)
    username: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    password: str = Field(min_length=8, max_length=64)
    auth: Literal["digest", "basic"] = "digest"
    # the terminal's own addresses (or networks): a push from anywhere else is refused
    addresses: list[IPvAnyNetwork] = Field(min_length=1)
    # where `scgw devices hikvision setup` reaches the terminal's ISAPI (default: the first
    # address)
    host: str | None = None
    port: int = Field(default=80, ge=1, le=65535)


class HikvisionDevice(_DeviceBase):
    transport: Literal["hikvision"]
    hikvision: HikvisionSettings


class DahuaSettings(_Strict):
    """A Dahua terminal whose event stream the gateway holds open."""

    host: str = Field(min_length=1)
    port: int = Field(default=80, ge=1, le=65535)
    username: str = Field(min_length=1, max_length=32)
    password: str = Field(min_length=1, max_length=64)
    # the heartbeat asked of the terminal; two missed, the stream is renewed and the
    # device offline
    heartbeat_s: float = Field(default=30.0, ge=1, le=600)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    reconnect_min_s: float = Field(default=1.0, gt=0, le=60)
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600)
    # event codes asked for; "All" is every code the terminal has
    codes: list[str] = Field(default_factory=lambda: ["All"], min_length=1)
    # the largest event part read; a larger one is refused and the stream renewed
    max_part_bytes: int = Field(default=65_536, ge=1024, le=1_048_576)


class DahuaDevice(_DeviceBase):
    transport: Literal["dahua"]
    dahua: DahuaSettings


AnyDevice = (GpioDevice | MqttDevice | ModbusDevice | SerialDevice | HttpDevice | OneNetDevice
             | CtwingDevice | Gb26875Device | HikvisionDevice | DahuaDevice)
DeviceConfig = Annotated[AnyDevice, Field(discriminator="transport")]


class LimitsConfig(_Strict):
    """What the gateway takes in when more comes than it can handle."""

    # a device's readings beyond this many messages a second (over a burst of
    # device_burst_s) are dropped, counted; its events, alarms first, always pass. 0: off
    device_rate_hz: float = Field(default=20.0, ge=0)
    device_burst_s: float = Field(default=5.0, gt=0, le=3600)
    # readings waiting for the rules beyond this share of journal.telemetry_capacity: the
    # readings of coalescible kinds (room temperature, tilt, battery) keep one a second per
    # device until the rules catch up
    shed_above: float = Field(default=0.5, gt=0, le=1)
    # the process's resident memory stays under this: each broker session holds at most
    # 1/16 of it in messages read and not yet handled, and above 85 % of it the sessions
    # read only a few messages ahead. 256 MiB leaves a 1 GB Pi room for the broker and
    # the store
    memory_mb: float = Field(default=256.0, ge=64, le=65_536)
    # the built-in alert gateway.overloaded: a lane's oldest unhandled message older than
    # overloaded_after_s for overloaded_hold_s raises it; every lane's oldest under
    # overloaded_clear_s resolves it
    overloaded_after_s: float = Field(default=5.0, gt=0, le=3600)
    overloaded_hold_s: float = Field(default=10.0, ge=0, le=3600)
    overloaded_clear_s: float = Field(default=1.0, gt=0, le=3600)


class GatewayConfig(_Strict):
    site: str = Field(pattern=_NAME)
    shutdown_timeout_s: float = Field(default=10.0, gt=0, le=600)
    gpio_factory: Literal["default", "mock"] = "default"
    broker: BrokerConfig = BrokerConfig()
    store: StoreConfig
    journal: JournalConfig = JournalConfig()
    rule_files: list[Path] = Field(default_factory=list)  # files or directories; default pack
    contacts_file: Path | None = None
    profile_dirs: list[Path] = Field(default_factory=list)
    pseudonym_key_env: str | None = None
    http: HttpServerConfig | None = None
    onenet: OneNetConfig | None = None
    ctwing: CtwingConfig | None = None
    gb26875: Gb26875ServerConfig | None = None
    metrics: MetricsConfig | None = None
    limits: LimitsConfig = LimitsConfig()
    console: ConsoleConfig | None = None
    buses: list[ModbusBusConfig] = Field(default_factory=list)
    devices: list[DeviceConfig] = Field(default_factory=list)
    # outside platforms, each behind its sharing policy (gateway.core.upstream_config)
    upstreams: list[UpstreamConfig] = Field(default_factory=list)
    sharing: SharingConfig = SharingConfig()

    @property
    def client_id(self) -> str:
        return self.broker.client_id or f"scgw-{self.site}"
