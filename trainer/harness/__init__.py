"""What drives a real agent from outside, for the demo, the benches and the tests: a private
mosquitto, the agent as a process, verdict listeners, the default station generated and trained
in its folder. Never part of a line PC's service."""
