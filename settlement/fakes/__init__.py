"""Fakes of outside services that speak the real protocols on a real port (tests and the sandbox)."""
