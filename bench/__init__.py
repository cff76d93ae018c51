"""The benchmark of the service against reference servers (``python -m bench``; see bench/run.py)."""
