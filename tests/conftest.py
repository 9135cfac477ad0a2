"""Suite-wide settings and fixtures.

One intra-op thread: the suite's tensors are small, where thread hand-offs cost more than they
save, and on a busy 2-core machine a waiting OpenMP thread can stall a tiny kernel for
milliseconds. Results do not depend on it (each comparison runs both sides in this process).
"""

import pytest
import torch

from tests.postgres import running_postgres, server_binaries

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def postgres_url():
    """The URL of a PostgreSQL server started for this test session (skipped where none is installed)."""
    if server_binaries() is None:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    with running_postgres() as url:
        yield url
