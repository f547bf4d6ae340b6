"""Rules: turn device events into alert transitions."""
