"""Pure tensor functions: log-probabilities, advantages, losses. No models, no I/O."""
