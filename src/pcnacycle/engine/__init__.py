"""Training and inference: the trainer loop with its hooks (``trainer``) and the predictor (``predictor``)."""
