"""The Grafana alarm dashboard: one definition, rendered as provisioning files or pushed.

`queries` holds every InfluxQL query, `panels` and `dashboard` the dashboard built on them,
`datasource` the InfluxDB data source, `alert_rules` the Grafana-managed alert rules,
`files` the file-provisioning documents and `provision` the push to a running Grafana
(it needs grafana-client, the `grafana` extra). Each is imported on its own: the gateway's
CLI loads none of them until a `scgw grafana` command runs.
"""
