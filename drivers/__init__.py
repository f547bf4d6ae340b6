"""Drivers turn what devices send into typed readings and events."""
