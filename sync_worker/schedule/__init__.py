"""Auto-syncs: when each library is next due, and the periodic tick that queues due ones."""
