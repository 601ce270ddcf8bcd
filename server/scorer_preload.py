"""What the scorers' fork server imports once, before it forks any scorer (server/worker.py):
the numerical libraries made single-threaded first, then the libraries the evaluators read
files and compute with. A new scorer (at start, or replacing one that died) then starts in
milliseconds with them already loaded, instead of importing them again.

Nothing here opens a file, a connection or a thread: the fork server shares no state with the
server's event loop, as a spawned process would not.
"""

import os

from server.worker import SINGLE_THREADED

os.environ.update(SINGLE_THREADED)  # before numpy is imported, below

import nibabel  # noqa: E402, F401
import numpy  # noqa: E402, F401
import pydicom  # noqa: E402, F401
import scipy.ndimage  # noqa: E402, F401
import scipy.spatial  # noqa: E402, F401
import sklearn.metrics  # noqa: E402, F401

import server.evaluators  # noqa: E402, F401
import server.event  # noqa: E402, F401
