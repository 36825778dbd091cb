"""Channel adapters: platform payloads in, core replies rendered natively out."""
