import os
import signal

import pytest

from redsm5_hpo.interrupts import StopRequested, graceful_stop, raise_if_requested, requested


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_inside_the_block_is_a_request_raised_where_work_can_stop(signum, code) -> None:
    before = signal.getsignal(signum)
    with graceful_stop():
        raise_if_requested()  # nothing asked yet
        os.kill(os.getpid(), signum)  # handled between bytecodes: the process goes on
        assert requested() == signum
        with pytest.raises(StopRequested) as stop:
            raise_if_requested()
        assert stop.value.exit_code == code and str(stop.value) == f"stopped by {signal.Signals(signum).name}"
        assert not isinstance(stop.value, Exception)  # no `except Exception` turns it into a failed trial
    assert signal.getsignal(signum) is before and requested() is None
