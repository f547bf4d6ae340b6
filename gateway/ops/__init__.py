"""What an operator runs beside the gateway: the `scgw` command line, `scgw doctor`, the
Grafana dashboard, the demo, the broker's ACLs, acknowledging alerts, reading the store
back, and private server processes for the demo, the tests and the benchmarks."""
