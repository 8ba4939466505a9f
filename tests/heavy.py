"""Which registered models are too big for `make test`'s registry-wide checks.

Each family's builder is still checked through its shallower members (resnet110 for
resnet1202, densenet_bc100 for densenet_bc250, ...); the giants run in `make test-all`
(`-m heavy`), since building and running them took most of the suite's time.
"""

import pytest

# 1000+ layers, or DenseNet-264 / WRN-28-10: seconds each for even a meta-tensor forward.
GIANTS = {"resnet1202", "plain_cifar1202", "preact_resnet1001", "preact_resnet164",
          "densenet264", "wrn28_10", "wrn"}


def by_name(names, heavy=GIANTS):
    """Parametrize over `names`, marking the ones in `heavy` as heavy."""
    return [pytest.param(n, marks=pytest.mark.heavy) if n in heavy else n for n in names]
