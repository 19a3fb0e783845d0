"""Nightly retraining: data assembly, the gate, the job, its runs and announcements."""
