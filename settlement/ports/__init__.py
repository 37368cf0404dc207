"""Ports: what the domain needs from the outside world, as interfaces with real and fake adapters."""
