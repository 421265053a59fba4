"""Tiny daemons for the manager's process tests, each one behaviour the manager must handle."""
