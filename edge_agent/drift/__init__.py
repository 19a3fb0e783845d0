"""Drift monitoring: sequential tests of each connector's scores and of the photo as a whole."""
