"""The smartsla oracle daemon: measures services, computes per-period figures, reports on-chain."""
