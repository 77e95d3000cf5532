"""A consumer group as the broker keeps it: its members, the window of the backlog it has
loaded, its queues, and the pieces of delivery that are its own (partition assignment, the
dead-letter copy)."""
