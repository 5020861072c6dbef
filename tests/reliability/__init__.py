"""Reliability and security tests: crashes, properties, authorisation, logs, fuzzing."""
