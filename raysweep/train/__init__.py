"""The worker side of a trial: the training recipe and loop (pure torch) and the Ray Train entry."""
