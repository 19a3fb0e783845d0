"""The demo's and benches' command-line commands."""
