"""The sync engine and its Redis helpers (lease lock, checkpoint, progress): no Dramatiq here."""
