"""PostgreSQL: migrations, the batch writer and the library/run repository."""
