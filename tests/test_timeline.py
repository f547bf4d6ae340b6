from gateway.core.timeline import Timeline


def test_same_millisecond_records_are_nudged_apart_per_device() -> None:
    line = Timeline()
    assert [line.stamp("a", 1000) for _ in range(3)] == [1000, 1001, 1002]
    assert line.stamp("b", 1000) == 1000  # another device has its own timeline
    assert line.stamp("a", 999) == 1003  # a clock step back never reorders a device
    assert line.stamp("a", 5000) == 5000
