"""The tests' DICOM sender: pynetdicom's SCU, its socket closed for certain when the
connection ends.

pynetdicom (3.0) closes an association's socket in the same `try` as its `shutdown()`, which
raises on a connection the peer has reset — the node killed mid-association, a refusal that
resets. The socket then stays open inside the association's reference cycle until the garbage
collector finds it, and its ResourceWarning lands in whichever test happens to be running then.
An EVT_CONN_CLOSE handler closes it as the connection ends. (The node's side needs nothing:
pynetdicom's server closes each accepted socket when its handler returns.)
"""

from __future__ import annotations

from pynetdicom import AE, evt
from pynetdicom.association import Association


def close_socket(event: evt.Event) -> None:
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.close()


def associate(ae: AE, port: int, called: str = "PODIUM") -> Association:
    """`ae` asks 127.0.0.1:`port` (AE title `called`) for an association."""
    return ae.associate("127.0.0.1", port, ae_title=called,
                        evt_handlers=[(evt.EVT_CONN_CLOSE, close_socket)])
