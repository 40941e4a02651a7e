"""The model and what its checkpoint carries: the two-head ResNet, the checkpoint format,
the train/eval transforms, calibration and the familiarity score."""
