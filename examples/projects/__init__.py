"""A small host application with its own MCP server: projects and tasks in SQLite (see README.md here)."""
