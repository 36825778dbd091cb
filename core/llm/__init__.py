"""Answer generation: an OpenAI-compatible chat model, or the offline extractive answerer."""
