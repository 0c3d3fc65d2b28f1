"""Store enrichment: one store fetch per app serves every library that owns it."""
