"""Where boards come from: camera drop folders and the MQTT image spool."""
