"""The city hub: the compounds' records from a NATS JetStream stream into the central store,
and the city-wide alert board."""
