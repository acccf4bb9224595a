"""``synack drill``: packetdrill's script language in pure Python.

:mod:`.ast` (parsed scripts), :mod:`.lexer` and :mod:`.parse` (the language),
:mod:`.target` (what a runner drives), :mod:`.packets` (building and matching
segments), :mod:`.runner` (timing and comparison rules), :mod:`.sim_target`
(a synack Stack on a virtual clock).
"""
