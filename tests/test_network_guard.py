"""The suite must not reach the internet: prove the guard is active."""

import socket

import pytest
from pytest_socket import SocketConnectBlockedError


def test_public_address_is_blocked():
    with pytest.raises(SocketConnectBlockedError):
        socket.create_connection(("93.184.215.14", 80), timeout=1)


def test_loopback_is_allowed():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    c = socket.create_connection(("127.0.0.1", port), timeout=1)
    c.close()
    srv.close()
