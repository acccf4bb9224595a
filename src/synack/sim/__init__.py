"""Deterministic discrete-event network simulator on a virtual clock.

Build a :class:`Network`, attach hosts (anything with ``receive``, ``transmit``,
``next_deadline`` and ``tick``, see :class:`Host`) at IPv4 addresses, join them
with links whose impairments are described by :class:`LinkParams`, schedule
application actions with :meth:`Network.call_at`, and :meth:`Network.run`.
The same seed gives the same :attr:`Network.records`, byte for byte.
"""

from .link import LinkDirection, LinkParams, LinkStats, Transit
from .network import Host, Network, PacketRecord
from .pcap_out import write_pcap_records

__all__ = [
    "Host",
    "LinkDirection",
    "LinkParams",
    "LinkStats",
    "Network",
    "PacketRecord",
    "Transit",
    "write_pcap_records",
]
