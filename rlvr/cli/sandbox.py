"""`rlvr sandbox doctor`: which protections the code sandbox has on this machine."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("sandbox", help="inspect the code-execution sandbox",
                                   description="Inspect the sandbox that runs generated programs.")
    parser.add_argument("action", choices=["doctor"],
                        help="doctor: print the active protections; exit 0 when the default isolation works")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sandbox
    from sandbox.capabilities import SandboxUnavailable, choose_backend

    caps = sandbox.capabilities()
    for line in caps.lines():
        print(line)
    try:
        backend = choose_backend(sandbox.Isolation(), caps)
    except SandboxUnavailable as e:
        print(f"default isolation: UNAVAILABLE: {e}")
        return 1
    probe = sandbox.run("print('ok')", limits=sandbox.Limits(wall_seconds=10))
    if probe.status is not sandbox.Status.OK or probe.stdout.strip() != "ok":
        print(f"default isolation: BROKEN: a trivial program ended with {probe.status.value}: {probe.stderr.strip()[-200:]}")
        return 1
    print(f"default isolation: available ({backend}); trivial program ran in {probe.wall_seconds * 1000:.0f} ms")
    return 0
