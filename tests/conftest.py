"""Suite-wide settings.

One intra-op thread: the suite's tensors are small, where thread hand-offs cost more than they
save, and on a busy 2-core machine a waiting OpenMP thread can stall a tiny kernel for
milliseconds. Results do not depend on it (each comparison runs both sides in this process).
"""

import torch

torch.set_num_threads(1)
