"""How Gost.start runs the services in the host app (runtime.host_mode), and HubThread's
calls, in this (unpatched) test process."""
import threading

import gevent
import pytest

from gostg.errors import HubStopped, NotPatchedError
from gostg.embed.thread import HubThread
from gostg.runtime import host_mode


def test_unpatched_process_must_choose():
    with pytest.raises(NotPatchedError) as e:
        host_mode(None)
    text = str(e.value)
    assert "monkey.patch_all()" in text and "thread=True" in text and "thread=False" in text


def test_explicit_choices_and_a_running_hub():
    assert host_mode(True) == "thread"
    assert host_mode(False) == "hub"
    # called from a greenlet: this thread's hub is running, whatever the patching
    assert gevent.spawn(host_mode, None).get(timeout=5) == "hub"


def test_hub_thread_calls_cross_and_end():
    hub = HubThread(name="test-hub")
    ran = []
    hub.start(lambda: ran.append(threading.current_thread().name))
    try:
        assert ran == ["test-hub"]
        assert not hub.is_current()
        # fn runs in a greenlet of the hub thread; its exception comes back as it is
        assert hub.call(lambda: (threading.current_thread().name, gevent.getcurrent().parent is not None)) \
            == ("test-hub", True)
        with pytest.raises(KeyError):
            hub.call({}.__getitem__, "x")
        with pytest.raises(TimeoutError):
            hub.call(gevent.sleep, 5, timeout=0.1)
    finally:
        assert hub.stop(lambda: None, timeout=1)
    assert not hub.thread.is_alive()
    with pytest.raises(HubStopped):
        hub.call(lambda: 1)


def test_a_failing_setup_raises_in_the_caller_and_ends_the_thread():
    hub = HubThread()
    with pytest.raises(ZeroDivisionError):
        hub.start(lambda: 1 / 0)
    assert not hub.thread.is_alive() and not hub.running
