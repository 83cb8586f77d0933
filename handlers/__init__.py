"""HTTP handlers: parse the request, ask the core, write the answer."""
