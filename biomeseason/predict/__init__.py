"""Prediction: the predictor (model rebuilt from a checkpoint), the scene finder, explanations,
the rows it writes and the ``predict`` command. Never imports training."""
