"""
The CUDA engine's per-thread context handling, on a stand-in driver (no GPU needed).

Whichever engine a thread used last, the next call of another engine makes that engine's context
current.
"""
import threading

from s3dnn_ros.engine import cuda
from s3dnn_ros.engine.cuda.driver import thread_contexts


class _Driver:
    """Records the context stack as PyCUDA's push/pop would change it."""

    def __init__(self):
        self.stack = []
        driver = self

        class Context:
            @staticmethod
            def pop():
                driver.stack.pop()

        self.Context = Context


class _Context:
    def __init__(self, driver, name):
        self.driver, self.name = driver, name

    def push(self):
        self.driver.stack.append(self.name)


class _Engine:
    _activate = cuda.CudaEngine._activate

    def __init__(self, driver, name):
        self._drv, self._context = driver, _Context(driver, name)


def _in_thread(body):
    errors = []

    def run():
        try:
            body()
        except Exception as error:  # noqa: BLE001 - re-raised on the test's thread
            errors.append(error)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def test_switching_engines_on_one_thread_makes_each_ones_context_current():
    driver = _Driver()
    gpu0, gpu1 = _Engine(driver, 'gpu0'), _Engine(driver, 'gpu1')

    def body():
        gpu0._activate()
        assert driver.stack == ['gpu0']
        gpu0._activate()
        assert driver.stack == ['gpu0']  # already current: nothing pushed
        gpu1._activate()
        assert driver.stack == ['gpu1']
        gpu0._activate()
        assert driver.stack == ['gpu0']  # device 0, 1, 0: device 0's context is current again
        thread_contexts(driver).pop_all()
        assert driver.stack == []
    _in_thread(body)
