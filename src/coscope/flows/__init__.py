"""Prefect flows: the loop and nothing else."""
