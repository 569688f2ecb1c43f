"""bayesim: a simulator of analog Bayesian machines.

A crossbar of noisy memory devices is used as the random number generator that draws the weight
samples of a mean-field Bayesian neural network. See README.md and docs/ for the user guide.
"""

__version__ = "0.1.0"
