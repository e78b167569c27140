"""The PostgreSQL schema, its migrations and named queries shared by the operator and runtime."""
