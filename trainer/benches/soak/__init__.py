"""`edge-inspect soak`: a long mixed stream with broker outages and agent kills, then checks."""
