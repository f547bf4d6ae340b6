"""Simulated devices and people, speaking the same protocols as the real ones."""
