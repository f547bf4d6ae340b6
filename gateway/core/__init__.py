"""The kernel: records, the device kinds' models, the configuration's schema, clock,
counters, topics and the journal's record types; what drivers, rules, the running gateway
and its tools all speak in. It imports nothing else of the project."""
