"""Training from sparse strokes: the step generator, patch sampling, losses and the candidates it chooses from."""
