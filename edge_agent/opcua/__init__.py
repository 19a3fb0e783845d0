"""The OPC UA server: the journal's verdicts after OPC 40001-101 and OPC 40100-1 (own process)."""
