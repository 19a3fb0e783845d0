"""The benches' command-line commands."""
