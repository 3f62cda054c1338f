"""Scanning: a pipeline of small stages (walk -> diff -> fingerprint -> commit) over one source."""
