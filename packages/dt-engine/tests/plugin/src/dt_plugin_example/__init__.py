"""A plugin package: its parts register into dt-models' registries when their entry point loads."""
