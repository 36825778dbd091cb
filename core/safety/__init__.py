"""Safety: what a message may contain before it is stored or shown to a model."""
