"""The journal (every table) and the crops kept for review and retraining."""
