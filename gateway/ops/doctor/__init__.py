"""`scgw doctor`: is this machine ready to run the gateway, and if not, what to do."""

from gateway.ops.doctor.clock import ClockProbe, ClockState, read_kernel_clock
from gateway.ops.doctor.finding import Finding, Status
from gateway.ops.doctor.runner import diagnose, failed

__all__ = ["ClockProbe", "ClockState", "Finding", "Status", "diagnose", "failed",
           "read_kernel_clock"]
