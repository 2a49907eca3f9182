"""Suite-wide settings: one intra-op thread per test process.

`make test` runs pytest with two xdist workers on two cores; torch's default of one thread per core in each
worker would oversubscribe the machine and make the suite several times slower.
"""

import torch

torch.set_num_threads(1)
