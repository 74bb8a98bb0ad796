"""t2i tests run tiny models: one intra-op thread is fastest, and on a shared 2-core machine several threads per
process oversubscribe the cores (steps measured 20-50x slower)."""

import torch

torch.set_num_threads(1)
