"""Built-in plugins. Each module is one entry point in the `geneface` group (see pyproject),
registered exactly like a third-party plugin."""
