"""The synthetic station, a private broker and a real agent process: demo and benches."""
