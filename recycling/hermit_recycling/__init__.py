"""Hermit's recycling policy, shared by the local worker pool and the Kubernetes operator."""

from hermit_recycling.policy import Decision, RecyclePolicy, WorkerState, decide

__all__ = ["Decision", "RecyclePolicy", "WorkerState", "decide"]
