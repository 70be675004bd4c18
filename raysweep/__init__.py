"""raysweep: compute-scaling studies of image models on Ray."""
