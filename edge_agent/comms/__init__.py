"""MQTT: the link and its outbox pump, commands, confirmations."""
