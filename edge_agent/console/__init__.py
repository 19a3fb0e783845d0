"""The operator console: a web application beside the agent (feed, review, models, set-up).

It runs as its own process (`edge-inspect console`), reads the journal through a read-only
SQLite connection and changes the station only through the code paths the commands use.
"""
