"""What the agent and the trainer agree on: bundle, verdict, station schema, atomic writes."""
