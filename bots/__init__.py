"""Process entry points: read settings, choose implementations, run a process."""
