"""edge-inspect's trainer: station data, detectors, calibration, reports and ONNX export."""
