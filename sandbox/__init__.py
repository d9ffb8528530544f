"""Run untrusted programs isolated and bounded.

    from sandbox import run, Limits
    result = run("print(input()[::-1])", stdin="abc", limits=Limits(wall_seconds=2))
    result.status, result.stdout   # (Status.OK, "cba\\n")

See `limits.Isolation` for what is required of the machine and `capabilities()` for what it offers.
"""
from sandbox.capabilities import Capabilities, SandboxUnavailable, capabilities
from sandbox.limits import Isolation, Limits
from sandbox.pool import Job, Pool, run_many
from sandbox.result import Result, Status
from sandbox.runner import Build, build, run

__all__ = ["Build", "Capabilities", "Isolation", "Job", "Limits", "Pool", "Result", "SandboxUnavailable", "Status",
           "build", "capabilities", "run", "run_many"]
