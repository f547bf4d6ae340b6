"""The GB/T 26875.3 server: confirmed only once journalled, a retransmission journalled once,
components mapped to their detectors and places, bad input counted and survived."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from pathlib import Path

from drivers.gb26875.facility import ComponentAnalog
from drivers.gb26875.frame import Command, Frame, TimeTag
from drivers.gb26875.objects import ComponentAddress
from drivers.gb26875.panel_map import TEMPERATURE
from drivers.gb26875.states import ComponentState, TransmitterState
from drivers.gb26875.stream import FrameStream
from drivers.gb26875.units import Unit, UnitType
from gateway.core.model import DeliveryClass
from gateway.ops.private_servers import free_port
from tests.drivers.gb26875_fixtures import EXAMPLES
from tests.drivers.gb26875_rig import OTHER, PANEL, open_rig
from tests.helpers import eventually


async def test_a_fire_alarm_is_confirmed_only_once_journalled_for_its_mapped_detector(
        tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig, rig.device(confirm_timeout_s=10) as device:
        rig.intake.gate.clear()  # the journal holds the commit back
        report = asyncio.create_task(device.fire("1-3-017", "3号楼2层东梯"))
        await asyncio.wait_for(rig.intake.waiting.wait(), 5)
        await asyncio.sleep(0.3)  # time for a confirm that should not come
        assert not report.done()
        assert rig.counters.get("gb26875_answers") == 0
        rig.intake.gate.set()
        delivery = await asyncio.wait_for(report, 5)
        assert (delivery.confirmed, delivery.sends) == (True, 1)
        (event,) = await rig.intake.journalled()
        assert (event.device, event.type, event.cls) == ("smoke-3-2-017", "alarm",
                                                          DeliveryClass.ALARM)
        assert event.fields["building"] == "3"
        assert event.fields["floor"] == 2
        assert event.fields["zone"] == "east stair"
        assert event.fields["component"] == "1-3-017"
        assert event.fields["description"] == "3号楼2层东梯"
        assert "fire-panel-3" in rig.intake.alive


async def test_a_lost_confirm_makes_the_device_send_again_and_it_is_journalled_once(
        tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig, rig.device(confirm_timeout_s=0.3) as device:
        device.lose_confirms = 1
        delivery = await device.fire("1-3-017")
        # one more send per confirm that came after the timeout (a loaded machine)
        assert delivery.confirmed
        assert delivery.sends >= 2
        assert len(set(device.sent)) == 1  # the same frame, same serial number
        assert [e.type for e in await rig.intake.journalled()] == ["alarm"]
        assert rig.counters.get("redelivered", device="fire-panel-3") == delivery.sends - 1


async def test_states_become_events_on_their_edges_and_restored_clears(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig, rig.device() as device:
        normal = ComponentState.NORMAL
        await device.fire("1-3-017")
        await device.component("1-3-017", normal | ComponentState.FAULT)
        await device.component("1-3-017", normal | ComponentState.FAULT
                               | ComponentState.SHIELDED | ComponentState.SUPERVISION)
        await device.restored("1-3-017")
        await device.restored("1-5-001")  # not known before: everything clears
        events = await rig.intake.journalled()
        assert [(e.device, e.type) for e in events] == [
            ("smoke-3-2-017", "alarm"),
            ("smoke-3-2-017", "alarm_cleared"), ("smoke-3-2-017", "fault"),
            ("smoke-3-2-017", "supervision"), ("smoke-3-2-017", "shielded"),
            ("smoke-3-2-017", "fault_cleared"), ("smoke-3-2-017", "supervision_cleared"),
            ("smoke-3-2-017", "shielded_cleared"),
            ("smoke-3-5-001", "alarm_cleared"), ("smoke-3-5-001", "fault_cleared"),
            ("smoke-3-5-001", "supervision_cleared"), ("smoke-3-5-001", "shielded_cleared"),
        ]


async def test_an_unmapped_component_still_raises_its_alarm_on_the_transmission_device(
        tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig, rig.device() as device:
        assert (await device.fire("2-9-100")).confirmed
        (event,) = await rig.intake.journalled()
        assert (event.device, event.type, event.fields["component"]) == (
            "fire-panel-3", "alarm", "2-9-100")
        assert rig.counters.get("gb26875_unmapped_components", device="fire-panel-3") == 1


async def test_the_transmission_devices_own_power_fault_is_its_fault(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig, rig.device() as device:
        await device.own_state(TransmitterState.NORMAL | TransmitterState.MAIN_POWER_FAULT)
        await device.own_state(TransmitterState.NORMAL)
        events = await rig.intake.journalled()
        assert [(e.device, e.type) for e in events] == [("fire-panel-3", "fault"),
                                                        ("fire-panel-3", "fault_cleared")]
        assert events[0].fields["fault"] == "main_power_fault"


async def test_a_heartbeat_and_an_unknown_unit_type_are_confirmed(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig, rig.device() as device:
        assert (await device.heartbeat()).confirmed
        assert (await device.send(b"\xfe\x01\x00")).confirmed  # a user-defined type
        assert rig.rejected("unknown_type") == 1
        assert await rig.intake.journalled() == []
        assert "fire-panel-3" in rig.intake.alive


async def _exchange(port: int, data: bytes, expect_answers: int) -> list[Frame]:
    """Send `data`, end the sending side, and read `expect_answers` frames back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        writer.write_eof()
        await writer.drain()
        stream = FrameStream()
        answers: list[Frame] = []
        async with asyncio.timeout(5):
            while len(answers) < expect_answers:
                chunk = await reader.read(4096)
                assert chunk, "the gateway closed the connection"
                answers += [f for f in stream.feed(chunk) if isinstance(f, Frame)]
        return answers
    finally:
        writer.close()


async def test_bad_input_is_rejected_counted_and_the_good_device_carries_on(
        tmp_path: Path) -> None:
    fire = EXAMPLES["component_fire"]  # from address 889: fire-panel-3, serial 1
    bad_checksum = fire[:-3] + bytes(((fire[-3] + 1) & 0xFF,)) + b"##"
    past_end = fire[:24] + (900).to_bytes(2, "little") + fire[26:]
    async with open_rig(tmp_path) as rig, rig.device(OTHER) as good:
        (denied,) = await _exchange(rig.server.port, b"\x00garbage" + bad_checksum, 1)
        assert (denied.command, denied.serial, denied.destination) == (Command.DENY, 1, PANEL)
        # the length swallows the good frame; at the end its bytes are scanned again
        (confirmed,) = await _exchange(rig.server.port, past_end + fire, 1)
        assert confirmed.command == Command.CONFIRM
        noise = random.Random(7).randbytes(5000)
        (confirmed,) = await _exchange(rig.server.port, noise + fire, 1)
        assert confirmed.command == Command.CONFIRM
        _, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
        writer.write(fire[:40])  # truncated: the connection ends inside the frame
        writer.close()
        await eventually(lambda: rig.counters.get("rejected", reason="truncated") >= 2)
        assert rig.rejected("bad_checksum", "unknown") == 1
        assert rig.counters.get("rejected", reason="bad_start") >= 2
        assert (await good.fire("1-1-001")).confirmed
        assert not rig.task.done()
        devices = [e.device for e in await rig.intake.journalled()]
        # the published frame (zone 10, position 2) is not mapped: on its transmitter, once
        assert sorted(devices) == ["fire-panel-3", "fire-panel-4"]
        assert rig.counters.get("redelivered", device="fire-panel-3") == 1


async def test_a_frame_from_an_unknown_address_is_denied_and_counted(tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig, rig.device(address=12345,
                                                     confirm_timeout_s=10) as stranger:
        delivery = await asyncio.wait_for(stranger.fire("1-3-017"), 30)
        assert not delivery.confirmed
        assert delivery.denied == delivery.sends
        assert rig.counters.get("rejected", reason="unknown_source") == delivery.sends
        assert await rig.intake.journalled() == []


async def test_a_components_temperature_is_its_detectors_reading_within_range(
        tmp_path: Path) -> None:
    def analog(tenths: int) -> Unit:
        return Unit(UnitType.COMPONENT_ANALOG, (ComponentAnalog(
            1, 1, 40, ComponentAddress(3, 17), TEMPERATURE, tenths, TimeTag.of(
                datetime(2026, 1, 1, 8, 0))),))

    async with open_rig(tmp_path) as rig, rig.device() as device:
        assert (await device.report(analog(253))).confirmed
        assert (await device.report(analog(3200))).confirmed  # 320 °C: outside the model
        assert [(r.device, r.values) for r in rig.intake.readings] == [
            ("smoke-3-2-017", {"temperature_c": 25.3})]
        assert rig.rejected("out_of_range") == 1


async def test_connections_are_bounded_in_number_and_idle_time(tmp_path: Path) -> None:
    async with open_rig(tmp_path, max_connections=1, idle_timeout_s=0.5) as rig, \
            rig.device() as device:
        assert (await device.heartbeat()).confirmed
        reader, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
        assert await asyncio.wait_for(reader.read(100), 5) == b""  # closed at once
        writer.close()
        assert rig.counters.get("gb26875_connections_refused") == 1
        # the device's own connection, silent past the idle timeout, is closed; it
        # connects again to send its next report
        await eventually(lambda: rig.counters.get("gb26875_idle_closed") == 1)
        assert (await device.fire("1-3-017")).confirmed


async def test_a_response_is_taken_unanswered_and_a_control_command_denied(
        tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig:
        _, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
        writer.write(EXAMPLES["response_transmitter_status"])  # main power fault, from 889
        await eventually(lambda: rig.counters.get("gb26875_frames") == 1)
        control = Frame(serial=9, command=Command.CONTROL, source=PANEL, destination=1,
                        data=EXAMPLES["sync_clock"][27:-3])
        (denied,) = await _exchange(rig.server.port, control.encode(), 1)
        writer.close()
        assert (denied.command, denied.serial) == (Command.DENY, 9)
        assert rig.counters.get("gb26875_answers") == 1  # the deny only
        assert rig.rejected("unexpected_command") == 1

        async def fault_journalled() -> bool:
            events = await rig.intake.journalled()
            return [(e.device, e.type) for e in events] == [("fire-panel-3", "fault")]

        await eventually(fault_journalled, what="the response's fault journalled")


async def test_over_udp_a_fire_is_confirmed_once_journalled_and_a_resend_recognised(
        tmp_path: Path) -> None:
    async with open_rig(tmp_path, udp_port=free_port()) as rig, \
            rig.device(udp=True, confirm_timeout_s=0.5) as device:
        device.lose_confirms = 1
        delivery = await device.fire("1-3-017")
        assert delivery.confirmed
        assert delivery.sends >= 2
        (event,) = await rig.intake.journalled()
        assert (event.device, event.type, event.fields["zone"]) == (
            "smoke-3-2-017", "alarm", "east stair")
        assert rig.counters.get("redelivered", device="fire-panel-3") == delivery.sends - 1


async def test_over_udp_bad_datagrams_are_counted_and_the_device_carries_on(
        tmp_path: Path) -> None:
    fire = EXAMPLES["component_fire"]
    async with open_rig(tmp_path, udp_port=free_port()) as rig, \
            rig.device(OTHER, udp=True) as good:
        assert rig.server.udp_port is not None
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("127.0.0.1", rig.server.udp_port))
        try:
            transport.sendto(random.Random(5).randbytes(900))
            transport.sendto(fire[:50])  # a frame cut short
            transport.sendto(fire[:-3] + b"\x00##")  # a bad checksum: denied
            await eventually(lambda: rig.counters.get("gb26875_answers", command="deny") == 1)
        finally:
            transport.close()
        assert rig.counters.get("rejected", reason="truncated") >= 1
        assert rig.counters.get("rejected", reason="bad_checksum") == 1
        assert (await good.fire("1-1-001")).confirmed
        assert [e.device for e in await rig.intake.journalled()] == ["fire-panel-4"]


async def test_a_frame_the_journal_refused_is_denied_and_taken_when_sent_again(
        tmp_path: Path) -> None:
    async with open_rig(tmp_path) as rig, rig.device(confirm_timeout_s=10) as device:
        rig.intake.refuse = 1
        delivery = await device.fire("1-3-017")
        assert (delivery.confirmed, delivery.sends, delivery.denied) == (True, 2, 1)
        assert rig.counters.get("gb26875_not_journalled", device="fire-panel-3") == 1
        # the state was not remembered on the refusal: the second send raises the alarm
        assert [(e.device, e.type) for e in await rig.intake.journalled()] == [
            ("smoke-3-2-017", "alarm")]
