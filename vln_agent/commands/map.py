"""``clipvil map``: draw a top-down map of a house, with an R2R path and a predicted trajectory.

Example::

    clipvil map --data DIR --scan 17DRP5sb8fy --path-id 5593 --predictions submit.json \\
        --out map.png

Draws the navigation graph (and, for the synthetic world, rooms, doors and objects), the
reference path of ``--path-id`` (searched in every ``DIR/R2R_*.json``) and the predicted
trajectory of ``--instr-id`` (default: the path's first instruction in the predictions
file), with the path lengths and the final distance to the goal. The PNG is written only
when every input is valid.
"""

from __future__ import annotations

import argparse

NAME = "map"
HELP = "Draw a top-down map of a scan: graph, R2R reference path and a predicted trajectory."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="data root with connectivity/, R2R_{split}.json and (synthetic) scenes/",
    )
    parser.add_argument("--scan", required=True, metavar="S", help="scan (house) id")
    parser.add_argument(
        "--path-id", type=int, metavar="N", help="R2R path to draw (looked up in every split)"
    )
    parser.add_argument(
        "--predictions",
        metavar="FILE",
        help='R2R submission [{"instr_id": ..., "trajectory": [[viewpoint, heading, elev]]}]',
    )
    parser.add_argument(
        "--instr-id",
        metavar="ID",
        help="instruction whose trajectory to draw (default: the path's first in FILE)",
    )
    parser.add_argument("--out", required=True, metavar="PNG", help="where to write the map")


def run(args: argparse.Namespace) -> int:
    from envs.maps import draw_map

    out = draw_map(
        args.data,
        args.scan,
        args.out,
        path_id=args.path_id,
        predictions=args.predictions,
        instr_id=args.instr_id,
    )
    print(f"wrote {out}")
    return 0
