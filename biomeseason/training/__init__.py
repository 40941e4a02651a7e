"""Training: settings, inputs, the epoch, the loop, evaluation, metrics and plots, scoring on
held-out places and shipping the Earth model. ``python -m biomeseason train``."""
