"""Engine-neutral delivery rules, for transports over engines that lack them natively.

Pure functions, no I/O: what to do with a message at receipt (:mod:`.admission`: the last
expired lease, redrives for another group, TTL, delay), when a nack dead-letters
(:mod:`.settling`), when a message expires or becomes deliverable (:mod:`.timing`), what a
dead-letter copy looks like (:mod:`.deadletter`) and which member owns which partition of an
ordered group (:mod:`.assignment`). ``nats://`` and ``redis://`` apply them; the built-in
broker has its own, in ``tidings.broker``, which they mirror.
"""
