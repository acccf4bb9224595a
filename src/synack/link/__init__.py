"""Drivers that put a Stack on a real wire: TAP/TUN devices, loopback, the event loop."""
