"""The operator dashboard: server-rendered pages over the daemon's state (docs/dashboard.md)."""
