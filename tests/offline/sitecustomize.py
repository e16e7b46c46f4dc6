"""Imported by every Python process the pipeline tests start (PYTHONPATH): no network beyond loopback.

The notebooks' kernels talk to papermill over local sockets; anything else is a leak the tests
must catch (docs/study.md §7: only the data step may fetch, and the tests' data is already present).
"""
import ipaddress
import socket

_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo


def _is_local(host) -> bool:
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return host in ("localhost", "", None)


def _refuse(what) -> None:
    raise OSError(f"network access refused by tests/offline/sitecustomize.py: {what}")


def _guarded(original):
    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _refuse(address)
        return original(self, address)
    return connect


def _getaddrinfo_local(host, *args, **kwargs):
    if not _is_local(host if not isinstance(host, bytes) else host.decode()):
        _refuse(host)
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded(_connect)
socket.socket.connect_ex = _guarded(_connect_ex)
socket.getaddrinfo = _getaddrinfo_local
