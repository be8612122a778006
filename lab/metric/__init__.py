"""Metric: energies, mining, the losses and their registry: the lesson itself."""
