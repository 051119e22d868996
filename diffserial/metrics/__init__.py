"""Sample-quality metrics computed on the host in numpy float64.

`tv` -- total-variation distance between samples binned into K cells and a known pmf, with the
finite-sample noise floor and percentile-bootstrap error bars.
`intervals` -- Clopper-Pearson and Wilson intervals for a proportion, percentile and basic bootstrap
intervals from resampled replicates.
`slopes` -- log-log convergence-rate fits restricted to points clearly above the noise floor.
"""
