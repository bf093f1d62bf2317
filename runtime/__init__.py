"""The processes a command-line run starts beside itself, and their lifetime: Prefect's temporary API
server (`runtime.prefect_api`). Kept apart from the flows, which only wire stages together."""
