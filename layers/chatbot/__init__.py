"""A streaming AI assistant that acts on a SaaS application's data, within the caller's role and organization."""
