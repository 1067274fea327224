"""rollout: executes a plan on the fleet: waves, windows, concurrency, redundancy, the
device upgrade state machine, health gates, rollback, encrypted config backups and the
crash-safe journal.

It owns every action that changes a device. It must never decide *what* a device should
run (that is planning's pure job), never fetch or verify images (it only receives a URL
builder), never read Git, and never raise for one device: outcomes are values.
"""

from reconciler.rollout.backup import BackupKey, BackupStore
from reconciler.rollout.context import RunContext, Work
from reconciler.rollout.engine import RolloutEngine, RolloutResult, max_unavailable, work_from_plan
from reconciler.rollout.health import HealthResult, Verdict, evaluate, run_check
from reconciler.rollout.journal import DeviceRecord, Journal, RolloutRecord
from reconciler.rollout.locks import DeviceLocks
from reconciler.rollout.machine import DeviceRun, supports_set_default
from reconciler.rollout.model import (
    ClientFactory,
    DeviceClient,
    DeviceOutcome,
    EventSink,
    ImageUrl,
    OutcomeStatus,
    RolloutSettings,
    Transition,
)
from reconciler.rollout.progress import policy_progress, rollout_progress
from reconciler.rollout.scheduler import Scheduler

__all__ = [
    "BackupKey",
    "BackupStore",
    "ClientFactory",
    "DeviceClient",
    "DeviceLocks",
    "DeviceOutcome",
    "DeviceRecord",
    "DeviceRun",
    "EventSink",
    "HealthResult",
    "ImageUrl",
    "Journal",
    "OutcomeStatus",
    "RolloutEngine",
    "RolloutRecord",
    "RolloutResult",
    "RolloutSettings",
    "RunContext",
    "Scheduler",
    "Transition",
    "Verdict",
    "Work",
    "evaluate",
    "max_unavailable",
    "policy_progress",
    "rollout_progress",
    "run_check",
    "supports_set_default",
    "work_from_plan",
]
