"""Running the service: health endpoints, metrics, systemd notify, logging, stats."""
