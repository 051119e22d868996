"""Learned networks the samplers take as plain functions.

    mlp.ScoreMLP                 residual MLP for R^d targets, with a sinusoidal time embedding
    mlp.score_fn_from            (model, params) -> score_fn for `diffserial.sample_continuous`, params traced
    transformer.MaskedTransformer  bidirectional pre-LN Transformer predicting tokens at every position
    transformer.predictor_from   (model, params) -> predictor for `diffserial.samplers.masked`, params traced
    looped.LoopedTransformer     one weight-tied encoder block applied `loops` times (serial depth a knob,
                                 parameters fixed), optional input injection; MaskedTransformer's interface
    recurrent.RecurrentPredictor stacked bidirectional GRU (flax nn.RNN + nn.GRUCell): serial depth grows with L;
                                 MaskedTransformer's interface
    continuous_answer.ContinuousAnswerTransformer  fixed-depth Transformer predicting the noise of a continuous
                                 (+-1 binary-coded) answer given prompt tokens: continuous diffusion over a
                                 quantized answer; continuous_answer.BinaryCode encodes and decodes tokens
"""
