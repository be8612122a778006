"""Measure: figures of merit of embeddings: verification, projections, health."""
