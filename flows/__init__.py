"""Prefect flows and tasks: orchestration only. Each task calls one plain function of a stage package."""
