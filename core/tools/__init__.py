"""Built-in tools the model may call, declared as commands offered only as tools."""
