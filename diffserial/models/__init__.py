"""Learned score networks.

    mlp.ScoreMLP        residual MLP for R^d targets, with a sinusoidal time embedding
    mlp.score_fn_from   (model, params) -> score_fn for `diffserial.samplers.driver`, params traced
"""
