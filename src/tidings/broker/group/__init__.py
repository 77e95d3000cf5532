"""A consumer group, as the broker keeps it: :class:`~.consumer_group.ConsumerGroup` owns its
delivery (members, credit, leases, timers, dead-lettering, fenced handover) over the state in
``queues`` (cursors, the loaded window of the backlog); ``host`` is its narrow interface to the
broker; ``member``, ``entries``, ``assignment`` and ``deadletter`` hold its parts."""
