"""The host around the TCP core, by role: timers, ports (and, as they move here, demux,
socket options and ICMP). :class:`synack.stack.Stack` composes them."""
