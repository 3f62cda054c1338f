"""The service layer: what the CLI and the API both call. No I/O formatting here, only data."""
