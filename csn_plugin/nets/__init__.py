"""The networks: the architecture registry, CSN, the baselines and weights I/O (store)."""
