"""Callback requests: their rows and history, and everything that happens to them after a call."""
