"""Table and JSON of ``embedkit env``."""

from __future__ import annotations

import os
from typing import Any

from . import print_json, stdout_console


def environment(info: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print_json(info)
        return
    console = stdout_console()
    python = info["python"]
    console.print(f"embedkit  {info['versions']['embedkit']}")
    console.print(f"python    {python['version']} ({python['implementation']}, {python['executable']})")
    console.print(f"platform  {info['platform']}")
    cores = info["cores"]
    console.print(f"cores     {cores['usable']} usable of {cores['machine']}")
    for name, version in info["versions"].items():
        if name != "embedkit":
            console.print(f"  {name:<14}{version or 'not installed'}")
    for pool in info["thread_pools"]:
        where = os.path.basename(pool["path"] or "")
        console.print(f"threads   {pool['threads']} ({pool['api']}: {pool['library']} {pool['version'] or '?'}, {where})")
    for name, value in info["environment"].items():
        console.print(f"env       {name}={value}")
