"""Starting programs from tests. A spawn whose exec fails with EFAULT is tried again: that failure was seen
on a sandboxed CI host, it is a fault of the host rather than of the program, and the retry keeps every
assertion about the program itself."""
import errno
import subprocess

ATTEMPTS = 3


def popen(command, **kwargs) -> subprocess.Popen:
    for attempt in range(ATTEMPTS):
        try:
            return subprocess.Popen(command, **kwargs)
        except OSError as error:
            if error.errno != errno.EFAULT or attempt == ATTEMPTS - 1:
                raise


def run(command, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)`` through popen."""
    with popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)
