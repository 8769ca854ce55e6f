"""The backend fixture: a kernel test runs once on the compiled C kernels and once on their torch twins."""
import pytest

from meprop_cli.ops import native


@pytest.fixture(params=["c", "torch"])
def backend(request, monkeypatch):
    """Run a test once on the compiled kernels and once on the pure-torch path."""
    if request.param == "torch":
        monkeypatch.setenv("MEPROP_KERNELS", "torch")
    elif native.library() is None:
        pytest.skip("no C compiler: only the torch path exists here")
    assert native.backend() == request.param
    return request.param
