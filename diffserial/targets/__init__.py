"""Analytic targets: Gaussian mixtures with exact noised scores, score perturbations, quantizers."""
