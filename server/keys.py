"""Typed keys for what the application and each request carry."""

from __future__ import annotations

import asyncpg
import jinja2
from aiohttp import web

from server.access import Principal
from server.config import Config
from server.connection import ConnectionGuard
from server.event import EventSpec
from server.hub import Hub
from server.inclusion.node import Node
from server.inclusion.pipeline import Intake
from server.listener import Listener
from server.loop_monitor import LoopMonitor
from server.worker import Scoring

CONFIG = web.AppKey("config", Config)
EVENT = web.AppKey("event", EventSpec)
POOL = web.AppKey("pool", asyncpg.Pool)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
HUB = web.AppKey("hub", Hub)
LISTENER = web.AppKey("listener", Listener)
SCORING = web.AppKey("scoring", Scoring)
CONNECTIONS = web.AppKey("connections", ConnectionGuard)
LOOP_MONITOR = web.AppKey("loop_monitor", LoopMonitor)
# Only when `--dicom-port` is set.
DICOM_NODE = web.AppKey("dicom_node", Node)
INTAKE = web.AppKey("intake", Intake)

PRINCIPAL = web.RequestKey("principal", Principal)
# The event loop's clock (monotonic) when the request arrived.
ARRIVED = web.RequestKey("arrived", float)
