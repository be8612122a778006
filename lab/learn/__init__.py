"""Learn: models, the trainer, runs and jobs; the engine that turns a config into a run."""
